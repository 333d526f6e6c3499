"""ONNX Runtime (CPU, float32): the subnet exported to ONNX (standard operators;
whole detectors through MMDeploy), timed and evaluated there."""
import os
import os.path as osp
from typing import Dict, Optional

from ...fileio import atomic_path
from ..onnx_export import (_FlatOutputs, evaluate_onnx, export_onnx, export_subnet_onnx,
                           onnx_latency_ms, uses_mmdeploy)
from .base import RUNTIMES, Runtime, SubnetModel


def link_or_copy(source: str, path: str) -> None:
    """``path`` as a hard link to ``source`` (a copy where links fail)."""
    import shutil
    if osp.exists(path):
        os.remove(path)
    try:
        os.link(source, path)
    except OSError:
        shutil.copyfile(source, path)


@RUNTIMES.register_module(name='onnxruntime')
class OnnxRuntime(Runtime):
    """The exported part ``'model'`` (:mod:`~mutual_mm.deploy.onnx_export`) in
    ONNX Runtime's CPU execution provider, ``threads`` intra-op threads, on real
    test inputs. Its outputs equal PyTorch's to float rounding (checked by the
    export tool), so the table keeps PyTorch's metric; :meth:`evaluate` runs
    the file on the test set all the same (the export tool's ``--onnx-eval``).

    A graph whose input size is dynamic (a whole detector) serves every
    resolution: exported once per width x proposals, linked under each
    subnet's name.
    """
    name = 'onnxruntime'
    file_suffix = '.onnx'

    def __init__(self, threads: Optional[int] = None, repeats: int = 10, warmup: int = 2):
        super().__init__(threads, repeats, warmup)
        self._graphs = {}  # (width, proposals) -> a file with a dynamic input size

    def export(self, target: SubnetModel, path: Optional[str] = None) -> str:
        if path is None:
            raise ValueError(f'{self.name}: export needs the path of the .onnx file')
        static = target.static_model()
        graph = ((target.subnet.width, target.subnet.proposals)
                 if uses_mmdeploy(static, 'model') else None)
        if graph in self._graphs:
            link_or_copy(self._graphs[graph], path)
            return path
        export_subnet_onnx(static, *target.examples[0], path)
        if graph is not None:
            self._graphs[graph] = path
        return path

    def latency_ms(self, artifact: str, target: SubnetModel) -> float:
        return onnx_latency_ms(artifact, [inputs.cpu().numpy() for inputs, _ in target.examples],
                               self.threads, self.repeats, self.warmup)

    def evaluate(self, artifact: str, target: SubnetModel) -> Dict[str, float]:
        return evaluate_onnx(artifact, target.static_model(), target.test_loader(),
                             target.evaluator(), self.threads)

    def module_latency_ms(self, module, inputs, path: Optional[str] = None) -> float:
        if path is None:
            raise ValueError(f'{self.name}: module_latency_ms needs the path of the .onnx file')
        with atomic_path(path) as tmp:
            export_onnx(_FlatOutputs(module).eval(), tuple(inputs.shape), tmp)
        return onnx_latency_ms(path, [inputs.cpu().numpy()], self.threads, self.repeats,
                               self.warmup)
