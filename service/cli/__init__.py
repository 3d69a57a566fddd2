"""The `nascreen` command line. Each sub-command lives in its own module and registers itself here.

Heavy libraries (matminer, torch, mlflow, ray) are imported inside the commands, so `nascreen --help`
stays fast.
"""

from __future__ import annotations

import logging

import typer

app = typer.Typer(
    name="nascreen",
    help="ML screening of sodium-battery materials: parse, featurise, train, predict, screen, serve.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _register() -> None:
    # One line per command module; keep the order the README presents them in.
    from service.cli import data as _data

    _data.register(app)
    from service.cli import featurize as _featurize

    _featurize.register(app)
    from service.cli import models as _models

    _models.register(app)
    from service.cli import predict as _predict

    _predict.register(app)
    from service.cli import screen as _screen

    _screen.register(app)
    from service.cli import campaign as _campaign

    _campaign.register(app)
    from service.cli import serve as _serve

    _serve.register(app)
    from service.cli import demo as _demo

    _demo.register(app)


def main() -> None:
    _register()
    app()
