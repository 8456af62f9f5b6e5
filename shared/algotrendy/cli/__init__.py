"""The `algotrendy` command line (console script `algotrendy = algotrendy.cli.main:app`)."""
