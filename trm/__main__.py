"""``python -m trm`` (and so ``accelerate launch -m trm run ...``) runs the CLI."""

from trm.cli import main

if __name__ == "__main__":
    main()
