#!/usr/bin/env python3
"""Train the bundled `synthetic-yolov5n` detector from scratch on synthetic frames, on a CPU, in minutes.

    python scripts/train_detector.py   # -> inference-image/edge_inference_worker/models/synthetic-yolov5n.pt

Steps: generate a seeded train/val set of synthetic CCTV frames (tests/support/synthetic.py) in a temporary
folder; train the small YOLOv5n-layout model in models/synthetic-yolov5n.yaml with ultralytics (no pretrained
weights: none exist offline); strip the best checkpoint (fp16, no optimizer state); check that it names
{0: person, 1: car} and finds the objects of a held-out synthetic video; print val mAP50.
Nothing is downloaded: ultralytics runs offline with plots off (plots fetch a font).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "inference-image" / "edge_inference_worker" / "models"
MODEL_YAML = MODELS / "synthetic-yolov5n.yaml"
MODEL_OUT = MODELS / "synthetic-yolov5n.pt"
sys.path.insert(0, str(REPO / "tests"))  # support.synthetic: the footage generator the tests use


def _offline_ultralytics(config_dir: Path) -> None:
    """Ultralytics reads these at import: no network, no pip, settings in a throwaway folder."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)


def write_dataset(root: Path, train_count: int, val_count: int, seed: int) -> Path:
    """Write a YOLO dataset (images as JPEG, labels as text) and return its data.yaml."""
    import cv2
    import numpy as np
    from support.synthetic import CLASS_NAMES, training_samples

    quality_rng = np.random.default_rng(seed + 7)
    for split, count, split_seed in (("train", train_count, seed), ("val", val_count, seed + 1_000_003)):
        images, labels = root / "images" / split, root / "labels" / split
        images.mkdir(parents=True)
        labels.mkdir(parents=True)
        for i, sample in enumerate(training_samples(count, split_seed)):
            # JPEG at varied quality: the worker sees compressed video, not clean renders.
            quality = int(quality_rng.integers(55, 96))
            cv2.imwrite(str(images / f"{i:05d}.jpg"), sample.image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
            (labels / f"{i:05d}.txt").write_text(sample.yolo_text())
    names = "\n".join(f"  {k}: {v}" for k, v in CLASS_NAMES.items())
    data = root / "data.yaml"
    data.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n{names}\n")
    return data


def check_on_held_out_video(weights: Path, workdir: Path, seed: int) -> None:
    """Fail loudly unless the stripped model finds each object of an unseen video at conf >= 0.5."""
    import av
    from support.synthetic import CLASS_NAMES, make_video, short_scenario
    from ultralytics import YOLO

    # ultralytics rewrites "...yolov5n.pt" paths that contain no letter "u" to "...yolov5nu.pt" (its YOLOv5u
    # rename); a neutral link name sidesteps that wherever the repository is checked out.
    link = workdir / "check-detector.pt"
    link.symlink_to(weights.resolve())
    model = YOLO(str(link))
    if dict(model.names) != CLASS_NAMES:
        raise SystemExit(f"model names {model.names} != {CLASS_NAMES}")
    video = workdir / "held-out.mp4"
    truth = make_video(video, short_scenario(), seed=seed)
    # Each object's middle frame (where it is well inside the picture).
    middles = {(o.start_frame + o.end_frame) // 2 for o in truth.objects}
    with av.open(str(video)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index not in middles:
                continue
            result = model.predict(frame.to_ndarray(format="bgr24"), conf=0.25, verbose=False)[0]
            found = [(CLASS_NAMES[int(c)], round(float(p), 3))
                     for c, p in zip(result.boxes.cls, result.boxes.conf, strict=True)]
            for obj, _ in truth.boxes_at(index):
                best = max((p for name, p in found if name == obj.class_name), default=0.0)
                print(f"held-out frame {index}: {obj.class_name} -> detections {found}")
                if best < 0.5:
                    raise SystemExit(f"held-out check failed: {obj.class_name} at frame {index} best conf {best:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-images", type=int, default=2400)
    parser.add_argument("--val-images", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=MODEL_OUT)
    parser.add_argument("--keep", type=Path, help="copy the dataset and run folder here (debugging)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="train-detector-") as tmp:
        workdir = Path(tmp)
        _offline_ultralytics(workdir / "ultralytics-config")
        import torch
        from ultralytics import YOLO, settings
        from ultralytics.utils.torch_utils import strip_optimizer

        settings.update(sync=False)
        torch.set_num_threads(args.threads)

        started = time.monotonic()
        data = write_dataset(workdir / "dataset", args.train_images, args.val_images, args.seed)
        print(f"dataset: {args.train_images} train + {args.val_images} val images in "
              f"{time.monotonic() - started:.0f} s")

        model = YOLO(str(MODEL_YAML))
        model.train(
            data=str(data), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, device="cpu", workers=0,
            seed=args.seed, deterministic=True, pretrained=False, amp=False, plots=False, cache=False,
            project=str(workdir / "runs"), name="train", exist_ok=True, verbose=False,
            close_mosaic=max(1, args.epochs // 4), warmup_epochs=1,
        )
        best = Path(model.trainer.best)
        metrics = YOLO(str(best)).val(data=str(data), imgsz=args.imgsz, batch=args.batch, device="cpu",
                                      workers=0, plots=False, verbose=False, project=str(workdir / "runs"),
                                      name="val", exist_ok=True)
        strip_optimizer(str(best))  # fp16 weights, no optimizer/EMA state: a small file to commit
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(best, args.out)
        check_on_held_out_video(args.out, workdir, seed=args.seed + 424242)
        if args.keep:
            shutil.copytree(workdir, args.keep, dirs_exist_ok=True)
        print(f"val mAP50 {metrics.box.map50:.3f}  mAP50-95 {metrics.box.map:.3f}  "
              f"per-class mAP50 {dict(zip(model.names.values(), metrics.box.ap50.round(3).tolist(), strict=True))}")
        print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB) in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
