"""The ground floor both halves stand on: atomic writes, weights + JSON files, bootstrap intervals,
device and distributed set-up, the mel front-end, figures. Nothing here imports anything of audioenc
above ``errors``."""
