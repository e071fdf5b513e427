"""The ground floor both halves stand on: atomic writes, weights + JSON files, bootstrap intervals,
device and distributed set-up. Nothing here imports anything of audioenc above ``errors``."""
