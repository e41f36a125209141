"""The `anomalygen` command line: a thin click layer over the library.

Subcommands live in `anomalygen/commands/<name>.py` (each exposes `command`) and are
imported only when used, so `anomalygen --help` and `validate` never import torch.
To add one: put an entry in COMMANDS with a one-line example.
"""

from __future__ import annotations

import importlib
import sys

import click

from anomalygen import __version__
from anomalygen.errors import AnomalygenError

# name -> (module exposing `command`, example shown in `anomalygen --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("anomalygen.commands.validate", "anomalygen validate out/anomaly-shapenet"),
    "preview": ("anomalygen.commands.preview", "anomalygen preview out/anomaly-shapenet --out out/preview"),
    "view": ("anomalygen.commands.view", "anomalygen view out/anomaly-shapenet --out out/anomaly-shapenet.html"),
    "build-shapenet": ("anomalygen.commands.build_shapenet", "anomalygen build-shapenet --classes 40 --out out/anomaly-shapenet"),
    "train-detector": ("anomalygen.commands.train_detector", "anomalygen train-detector --detector btf --data out/anomaly-shapenet --classes ashtray0,bottle0 --out runs/btf"),
    "evaluate": ("anomalygen.commands.evaluate", "anomalygen evaluate runs/btf"),
    "pretrain-detector": ("anomalygen.commands.pretrain_detector", "anomalygen pretrain-detector --detector imrnet --recipe imrnet-tiny --out runs/imrnet-pretrained"),
    "depth-defects": ("anomalygen.commands.depth_defects", "anomalygen depth-defects --input mvtec3d --out out/das3d"),
    "render-mvtec3d": ("anomalygen.commands.render_mvtec3d", "anomalygen render-mvtec3d --classes bagel,tire --out out/rendered"),
    "zero-shot": ("anomalygen.commands.zero_shot", "anomalygen zero-shot --detectors btf --data out/rendered --out runs/zs-rendered"),
    "pseudo-anomalies": ("anomalygen.commands.pseudo_anomalies", "anomalygen pseudo-anomalies --out out/pseudo --class bagel --size 128"),
    "blender": ("anomalygen.commands.blender", "anomalygen blender run defect -- --input cup.ply --output out.ply --defect hole"),
}


class UserError(click.ClickException):
    """One line on stderr, exit code 2: the user's input is wrong, not our code."""

    exit_code = 2


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        return importlib.import_module(COMMANDS[name][0]).command

    def format_epilog(self, ctx, formatter):
        formatter.write("\nExamples:\n")
        for _, example in sorted(COMMANDS.values(), key=lambda v: v[1]):
            formatter.write(f"  {example}\n")  # unwrapped, so they can be copied

    def invoke(self, ctx):
        from anomalygen.io.lock import session

        try:
            with session():  # output folders a command locks are released when it ends
                return super().invoke(ctx)
        except AnomalygenError as exc:
            close_progress_bars()
            raise UserError(one_line(str(exc))) from None
        except OSError as exc:  # a file-system fault outside the atomic writers: path and cause in words
            from anomalygen.io.atomic import describe_os_error, describe_path_error

            close_progress_bars()
            if exc.filename:
                raise UserError(f"{exc.filename}: {describe_path_error(exc.filename, exc)}") from None
            raise UserError(describe_os_error(exc)) from None


def close_progress_bars() -> None:
    """Close live tqdm bars so an error line starts on a line of its own."""
    tqdm_module = sys.modules.get("tqdm")
    if tqdm_module is None:
        return
    for bar in list(getattr(tqdm_module.tqdm, "_instances", ())):
        try:
            bar.close()
        except Exception:  # a bar half torn down: nothing left to close
            pass


def one_line(message: str) -> str:
    """Error text on one line (a library's multi-line message is joined). An error that torch carried
    out of a DataLoader worker holds the worker's traceback; its last line is the error itself."""
    if "Original Traceback" in message:
        last = message.strip().splitlines()[-1]
        message = last.split(": ", 1)[1] if ": " in last else last
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="anomalygen")
def cli():
    """Manufacture labeled 3D anomaly datasets and train the detectors that consume them.

    Every command runs offline on an embedded default (procedural shapes, rendered
    scenes, bundled textures) and reads/writes the public layouts: Anomaly-ShapeNet,
    Real3D-AD and MVTec 3D-AD. `anomalygen COMMAND --help` explains each command.
    """


def main(argv=None):
    return cli.main(args=argv, prog_name="anomalygen")


if __name__ == "__main__":
    sys.exit(main())
