"""Seed 3's entry point: `python main.py --1ch | --32ch [options]` is `audioenc train …`."""

import sys

from audioenc.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
