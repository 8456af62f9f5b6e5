"""`python -m algotrendy.cli ...`, the same as the `algotrendy` console script."""

from algotrendy.cli.main import app

app(prog_name="algotrendy")
