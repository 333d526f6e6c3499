"""One subnet deployed: its static weights and config, and its file for a
runtime, checked and (optionally) evaluated there (``tools/export_subnet.py``).

:func:`deploy_subnet` runs the whole sequence; :func:`write_runtime_files`
the part after the static export, on an :class:`~.export.ExportedSubnet`.
"""
import copy
import json
import os.path as osp
from typing import Dict, Optional

from ..fileio import write_text
from .export import ExportedSubnet, export_subnet_files
from .onnx_export import write_checked_onnx
from .runtimes import SubnetModel, build_runtime
from .subnet import Subnet


def describe_check(check: Dict) -> str:
    """One line for a :func:`~.onnx_export.check_subnet_onnx` result."""
    if 'max_abs_diff' in check:
        return (f'max |diff| {check["max_abs_diff"]:.2g}, {check["max_rel_diff"]:.2g} of '
                'the largest output')
    parts = [f'{check["detections"]} detections, same counts: {check["same_counts"]}',
             f'labels equal: {check["labels_equal"]}']
    parts += [f'{key} {check[key]:.2g}' for key in ('box_px', 'score', 'mask_pixels')
              if key in check]
    return ', '.join(parts)


def _subnet_model(exported: ExportedSubnet, subnet: Subnet, num_batches: int) -> SubnetModel:
    """The static subnet as a runtime receives it; its loaders from the
    exported config (whose test pipeline is already at the subnet)."""
    from mmengine.runner import Runner

    from .calibrate_checkpoint import calibration_dataloader_cfg
    cfg = exported.cfg
    return SubnetModel(
        exported.static, subnet, exported.examples, static=exported.static,
        test_loader=lambda: Runner.build_dataloader(copy.deepcopy(cfg.test_dataloader),
                                                    seed=0),
        calibration_loader=lambda: Runner.build_dataloader(calibration_dataloader_cfg(cfg),
                                                           seed=0),
        evaluator_cfg=cfg.test_evaluator, num_batches=num_batches)


def write_runtime_files(exported: ExportedSubnet, subnet: Subnet, out_dir: str,
                        runtime: str = 'onnxruntime', part: Optional[str] = None,
                        evaluate: bool = False, threads: Optional[int] = None,
                        num_batches: int = 10) -> Dict:
    """``out_dir/subnet.onnx`` of ``part`` (checked in ONNX Runtime against
    PyTorch, :func:`~.onnx_export.write_checked_onnx`), and for a runtime
    that runs another file (``'onnxruntime-int8'``) that file too
    (``out_dir/subnet<suffix>``, calibrated on ``num_batches`` batches of the
    config's calibration data). With ``evaluate``: the file the runtime runs,
    scored on the test set in it with the config's metric, written to
    ``out_dir/onnx_metrics.json``.

    Returns:
        the check (:func:`~.onnx_export.check_subnet_onnx`) with ``path``,
        ``part``, ``runtime``, and ``metrics`` when evaluated.
    """
    engine = build_runtime(runtime, threads=threads)
    if not engine.file_suffix:
        raise ValueError(f'runtime {runtime!r} writes no file; the export tool writes '
                         "ONNX: use 'onnxruntime' or another runtime with a file")
    result = dict(write_checked_onnx(exported.static, exported.examples, out_dir, part),
                  runtime=runtime)
    target = _subnet_model(exported, subnet, num_batches)
    path = result['path']
    if engine.file_suffix != '.onnx':
        if result['part'] != 'model':
            raise ValueError(f'runtime {runtime!r} runs the whole model; part '
                             f'{result["part"]!r} is not one of its files')
        path = engine.export(target, osp.join(out_dir, 'subnet' + engine.file_suffix))
        result['runtime_path'] = path
    if evaluate:
        metrics = engine.evaluate(path, target)
        result['metrics'] = metrics
        write_text(osp.join(out_dir, 'onnx_metrics.json'), json.dumps(
            dict(subnet=subnet.as_dict(), onnx=path, runtime=runtime, metrics=metrics),
            indent=1))
    return result


def deploy_subnet(cfg, checkpoint: str, subnet: Subnet, out_dir: str,
                  runtime: Optional[str] = None, part: Optional[str] = None,
                  evaluate: bool = False, threads: Optional[int] = None,
                  allow_untrained: bool = False, num_batches: int = 10):
    """:func:`~.export.export_subnet_files` (``out_dir/subnet.pth`` and
    ``subnet_config.py``), then, with a ``runtime``, :func:`write_runtime_files`.

    Returns:
        (the :class:`~.export.ExportedSubnet`, the runtime files' dict or None)
    """
    # a bad runtime name or thread count is refused before anything is written
    engine = build_runtime(runtime, threads=threads) if runtime is not None else None
    exported = export_subnet_files(cfg, checkpoint, subnet, out_dir, allow_untrained)
    if engine is None:
        return exported, None
    engine.check_model(exported.static)
    return exported, write_runtime_files(exported, subnet, out_dir, runtime, part, evaluate,
                                         threads, num_batches)
