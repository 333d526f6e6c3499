"""ONNX Runtime on INT8: static quantization (QDQ) of the exported subnet,
calibrated on the config's calibration data.

The float32 ONNX file of :class:`~.onnx_runtime.OnnxRuntime` is pre-processed
(ONNX Runtime's ``quant_pre_process``: shape inference and graph folding) and
quantized by ``onnxruntime.quantization.quantize_static`` in the QDQ format:
weights signed 8-bit per output channel (depthwise convolutions lose little),
activations unsigned 8-bit per tensor, their ranges the min/max seen on
``num_batches`` batches of the config's calibration data (training images
through the test pipeline at the subnet's input: what BN calibration draws).
ONNX Runtime then fuses each QuantizeLinear / op / DequantizeLinear group whose
INT8 kernel it has; an op without one keeps float32 between a dequantize and a
quantize. :func:`runtime_operators` counts which is which after its
optimizations. Measured with ONNX Runtime 1.32 on the CPU: every convolution of
the 2D MobileNetV1 (depthwise included) and of the 3D SlowOnly runs as
``QLinearConv`` (3D convolutions too), the residual additions as
``QLinearAdd``, global pooling and the classifier (``QGemm``) in INT8; only the
input's quantize and the scores' dequantize stay float (docs/benchmarks.md §8).

The outputs are no longer PyTorch's up to rounding, so the table's metric of
these rows is measured here, on the test set (:meth:`evaluate`).

Whole detectors (the MMDeploy graph) are refused. The quantizer does go
through that graph (measured on the demo Mask R-CNN: its 48 convolutions and 4
fully connected layers become INT8, ``RoiAlign``, ``NonMaxSuppression``, the
mask head's ``ConvTranspose`` and the pasting's ``GridSample`` stay float), but
it also quantizes the box decoding and score arithmetic (``Add``, ``Mul``,
``Concat``, ``Sigmoid`` on coordinates and scores) to 8 bits, and its
calibration would run the data-dependent proposals of one input size only:
nothing here checks boxes and masks against that rounding. Use
``'onnxruntime'`` (float32) for detectors.
"""
import collections
import os.path as osp
import tempfile
from itertools import islice
from typing import Dict, Optional

import numpy as np
import torch

from ...fileio import atomic_path
from ..onnx_export import need_onnxruntime, onnx_session, uses_mmdeploy
from .base import RUNTIMES, Runtime, SubnetModel
from .onnx_runtime import OnnxRuntime


def _need_quantization():
    need_onnxruntime('INT8')
    from onnxruntime import quantization  # a submodule the package does not import
    return quantization


def calibration_feeds(model, dataloader, num_batches: int, input_name: str):
    """``{input_name: array}`` of each input (batch 1) of the first
    ``num_batches`` batches of ``dataloader``, preprocessed by ``model``'s data
    preprocessor: the data an INT8 file's activation ranges come from."""
    with torch.no_grad():
        for batch in islice(dataloader, num_batches):
            inputs = model.data_preprocessor(batch, False)['inputs']
            for i in range(len(inputs)):
                yield {input_name: np.ascontiguousarray(inputs[i:i + 1].cpu().numpy(),
                                                        dtype=np.float32)}


def quantize_onnx(fp32_path: str, path: str, feeds) -> str:
    """Write the QDQ INT8 quantization of ``fp32_path`` at ``path``,
    activation ranges calibrated (min/max) on ``feeds`` (an iterable of
    ONNX Runtime input dicts)."""
    q = _need_quantization()

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self._feeds = iter(feeds)

        def get_next(self):
            return next(self._feeds, None)

    with tempfile.TemporaryDirectory(dir=osp.dirname(osp.abspath(path))) as tmp:
        prepared = osp.join(tmp, 'prepared.onnx')
        q.quant_pre_process(fp32_path, prepared, skip_symbolic_shape=True)
        with atomic_path(path) as out:
            q.quantize_static(prepared, out, Reader(), quant_format=q.QuantFormat.QDQ,
                              activation_type=q.QuantType.QUInt8,
                              weight_type=q.QuantType.QInt8, per_channel=True,
                              calibrate_method=q.CalibrationMethod.MinMax)
    return path


#: op types of ONNX Runtime's optimized graph that compute in INT8
_INT8_PREFIXES = ('QLinear', 'QGemm', 'MatMulInteger', 'ConvInteger', 'DynamicQuantize',
                  'NhwcQLinear')
#: op types whose compute is float unless fused into one of the above
_COMPUTE = ('Conv', 'FusedConv', 'NhwcFusedConv', 'ConvTranspose', 'Gemm', 'FusedGemm',
            'MatMul', 'FusedMatMul', 'AveragePool', 'GlobalAveragePool', 'MaxPool', 'Add',
            'Mul', 'Concat', 'RoiAlign', 'GridSample')


def runtime_operators(path: str, threads: Optional[int] = 1) -> Dict:
    """What ONNX Runtime (CPU) really runs for the file at ``path``, after its
    graph optimizations (which fuse Q/DQ groups into INT8 kernels): ``int8``
    (op type -> count of INT8 kernels), ``float`` (compute op type -> count
    left in float32, a 3D convolution counted as ``Conv3d``),
    ``quantize_dequantize`` (the Q/DQ nodes left: float <-> INT8 boundaries)
    and ``other`` (data movement, and pooling on the INT8 tensors)."""
    import onnx
    import onnxruntime as ort
    with tempfile.TemporaryDirectory() as tmp:
        optimized = osp.join(tmp, 'optimized.onnx')
        options = ort.SessionOptions()
        options.optimized_model_filepath = optimized
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # its note that the file is machine-specific
        if threads:
            options.intra_op_num_threads = threads
        ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        graph = onnx.load(optimized).graph
    ranks = {t.name: len(t.dims) for t in graph.initializer}
    for node in graph.node:  # a dequantized weight has its initializer's rank
        if node.op_type == 'DequantizeLinear' and node.input[0] in ranks:
            ranks[node.output[0]] = ranks[node.input[0]]
    int8, floats, other, qdq = (collections.Counter(), collections.Counter(),
                                collections.Counter(), 0)
    for node in graph.node:
        op = node.op_type
        if op in ('QuantizeLinear', 'DequantizeLinear'):
            qdq += 1
        elif op.startswith(_INT8_PREFIXES):
            int8[op] += 1
        elif op in _COMPUTE:
            is_3d = 'Conv' in op and len(node.input) > 1 and ranks.get(node.input[1]) == 5
            floats['Conv3d' if is_3d else op] += 1
        else:
            other[op] += 1
    return dict(int8=dict(int8), float=dict(floats), quantize_dequantize=qdq,
                other=dict(other))


@RUNTIMES.register_module(name='onnxruntime-int8')
class OnnxRuntimeInt8(OnnxRuntime):
    """The subnet's ONNX file quantized to INT8 (QDQ, static; see the module
    docstring), run and timed in ONNX Runtime's CPU execution provider like
    :class:`OnnxRuntime`, its metric measured there on the test set."""
    name = 'onnxruntime-int8'
    precision = 'int8'
    file_suffix = '_int8.onnx'
    metric_in_runtime = True
    # the fp32 part OnnxRuntime would time is not what runs here: refused
    module_latency_ms = Runtime.module_latency_ms

    def check_model(self, model) -> None:
        if uses_mmdeploy(model, 'model'):
            raise ValueError(
                f'runtime {self.name!r}: {type(model).__name__} exports whole through '
                'MMDeploy (RPN, RoI heads, NMS, mask pasting), which is not quantized '
                "here; use 'onnxruntime' (float32) for detectors")

    def export(self, target: SubnetModel, path: Optional[str] = None) -> str:
        if path is None:
            raise ValueError(f'{self.name}: export needs the path of the .onnx file')
        self.check_model(target.static_model())
        with tempfile.TemporaryDirectory(dir=osp.dirname(osp.abspath(path))) as tmp:
            fp32 = super().export(target, osp.join(tmp, 'fp32.onnx'))
            name = onnx_session(fp32).get_inputs()[0].name
            feeds = calibration_feeds(target.static_model(), target.calibration_loader(),
                                      target.num_batches, name)
            quantize_onnx(fp32, path, feeds)
        return path


__all__ = ['OnnxRuntimeInt8', 'calibration_feeds', 'quantize_onnx', 'runtime_operators']
