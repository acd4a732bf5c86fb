"""``python -m restnetc``: the ``restnetc`` command (so ``torchrun -m restnetc`` launches it on every rank)."""

from restnetc.cli import main

if __name__ == "__main__":
    main()
