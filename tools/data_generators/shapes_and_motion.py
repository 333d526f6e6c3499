"""Small real-format datasets generated on the fly (no download).

* :func:`make_coco_shapes`: images of filled shapes (rectangle, ellipse, triangle)
  on noisy backgrounds, with a COCO ``annotations.json`` (boxes and polygon masks).
* :func:`make_motion_videos`: ``.mp4`` clips of a moving square whose class is the
  direction of motion (optionally: and whether it is a ring), with a
  Kinetics-style video list (``path label`` lines).
"""
import json
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

SHAPE_CLASSES = ('rectangle', 'ellipse', 'triangle')
MOTION_CLASSES = ('left', 'right', 'up', 'down')


def _shape_polygon(kind: str, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    if kind == 'rectangle':
        pts = [(x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h)]
    elif kind == 'triangle':
        pts = [(x0 + w // 2, y0), (x0 + w, y0 + h), (x0, y0 + h)]
    else:  # ellipse as a 24-gon, so the mask polygon is the drawn shape
        t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        pts = np.stack([x0 + w / 2 + w / 2 * np.cos(t), y0 + h / 2 + h / 2 * np.sin(t)], 1)
    return np.round(np.asarray(pts, dtype=np.float64)).astype(np.int32)


def make_coco_shapes(out_dir: str, num_images: int = 8, size: Tuple[int, int] = (160, 120),
                     max_objects: int = 3, seed: int = 0,
                     ann_file: str = 'annotations.json') -> str:
    """Write ``num_images`` images of ``size`` (w, h) under ``out_dir/images`` and
    their COCO annotations to ``out_dir/ann_file``; returns the annotation path."""
    rng = np.random.default_rng(seed)
    width, height = size
    os.makedirs(osp.join(out_dir, 'images'), exist_ok=True)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        base = rng.integers(40, 200, size=3)
        img = np.clip(base + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
        placed: List[Tuple[int, int, int, int]] = []
        for _ in range(int(rng.integers(1, max_objects + 1))):
            label = int(rng.integers(len(SHAPE_CLASSES)))
            w = int(rng.integers(width // 6, width // 2))
            h = int(rng.integers(height // 6, height // 2))
            # Shapes never overlap: an occluded shape's full polygon would be a
            # wrong mask and box. Give up on this object after a few tries.
            for _try in range(20):
                x0 = int(rng.integers(0, width - w))
                y0 = int(rng.integers(0, height - h))
                if all(x0 + w <= a or a + c <= x0 or y0 + h <= b or b + d <= y0
                       for a, b, c, d in placed):
                    break
            else:
                continue
            placed.append((x0, y0, w, h))
            poly = _shape_polygon(SHAPE_CLASSES[label], x0, y0, w, h)
            color = tuple(int(c) for c in (255 - base + rng.integers(-30, 30, 3)) % 256)
            cv2.fillPoly(img, [poly], color)
            x, y, bw, bh = cv2.boundingRect(poly)
            annotations.append(dict(
                id=len(annotations) + 1, image_id=image_id, category_id=label + 1,
                bbox=[x, y, bw, bh], area=float(cv2.contourArea(poly)), iscrowd=0,
                segmentation=[poly.reshape(-1).astype(float).tolist()]))
        file_name = f'images/{image_id:05d}.jpg'
        cv2.imwrite(osp.join(out_dir, file_name), img)
        images.append(dict(id=image_id, file_name=file_name, width=width, height=height))
    categories = [dict(id=i + 1, name=n) for i, n in enumerate(SHAPE_CLASSES)]
    path = osp.join(out_dir, ann_file)
    with open(path, 'w') as f:
        json.dump(dict(images=images, annotations=annotations, categories=categories), f)
    return path


def make_motion_videos(out_dir: str, num_videos: int = 8, size: Tuple[int, int] = (64, 48),
                       num_frames: int = 24, seed: int = 0,
                       list_file: str = 'videos.txt', rings: bool = False) -> str:
    """Write ``num_videos`` mp4 clips (class = direction of a moving square) and a
    Kinetics-style list ``<file> <label>``; returns the list's path.

    With ``rings`` the object is small and either solid or hollow (a ring), and
    the class is (shape, direction): label ``4 * hollow + direction``, see
    :func:`motion_classes`. At low resolution a ring's hole blurs away, so
    subnets that trade resolution lose the shape half of the label: the
    demo's video table then shows a trade-off.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    os.makedirs(osp.join(out_dir, 'videos'), exist_ok=True)
    lines: List[str] = []
    steps: Dict[str, Sequence[int]] = dict(left=(-1, 0), right=(1, 0), up=(0, -1), down=(0, 1))
    classes = motion_classes(rings)
    for i in range(num_videos):
        label = i % len(classes)
        dx, dy = steps[MOTION_CLASSES[label % len(MOTION_CLASSES)]]
        hollow = label >= len(MOTION_CLASSES)
        # rings: small (a 9 px ring's 5 px hole survives the mp4 codec at 64x48
        # and blurs when downscaled); else a large square
        side = min(size) // 5 if rings else int(rng.integers(min(size) // 5, min(size) // 3))
        speed = max(1, (min(size) - side) // num_frames)
        x = int(rng.integers(0, width - side)) if dx == 0 else (width - side if dx < 0 else 0)
        y = int(rng.integers(0, height - side)) if dy == 0 else (height - side if dy < 0 else 0)
        bg = rng.integers(0, 120, size=3)
        name = f'videos/{i:05d}.mp4'
        writer = cv2.VideoWriter(osp.join(out_dir, name), cv2.VideoWriter_fourcc(*'mp4v'),
                                 12, (width, height))
        for _ in range(num_frames):
            frame = np.empty((height, width, 3), np.uint8)
            frame[:] = bg
            frame[max(y, 0):y + side, max(x, 0):x + side] = (230, 230, 230)
            if hollow:
                frame[max(y + 2, 0):y + side - 2, max(x + 2, 0):x + side - 2] = bg
            writer.write(frame)
            x += dx * speed
            y += dy * speed
        writer.release()
        lines.append(f'{name} {label}')
    path = osp.join(out_dir, list_file)
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def motion_classes(rings: bool = False) -> Tuple[str, ...]:
    """The class names of :func:`make_motion_videos` (``rings``: square and ring
    per direction)."""
    if not rings:
        return MOTION_CLASSES
    return tuple(f'{shape} {d}' for shape in ('square', 'ring') for d in MOTION_CLASSES)
