"""Deploy runtimes as registered plug-ins (:mod:`.base`): each one exports,
times and evaluates a subnet. One file per runtime; importing it registers it.

=====================  =========  ==============================================
name                   precision  what runs
=====================  =========  ==============================================
``torch``              fp32       the PyTorch model on its device
``onnxruntime``        fp32       the exported ONNX file, ONNX Runtime (CPU)
``onnxruntime-int8``   int8       that file quantized (static, QDQ), ONNX Runtime
=====================  =========  ==============================================
"""
from .base import (PRECISIONS, RUNTIMES, Runtime, SubnetModel, build_runtime,
                   module_timing_runtimes, runtime_class, runtime_names, usable_cpus)
from .pytorch import TorchRuntime, torch_threads
from .onnx_runtime import OnnxRuntime, link_or_copy
from .onnx_runtime_int8 import OnnxRuntimeInt8, quantize_onnx, runtime_operators

__all__ = ['RUNTIMES', 'PRECISIONS', 'Runtime', 'SubnetModel', 'build_runtime',
           'runtime_class', 'runtime_names', 'module_timing_runtimes', 'usable_cpus',
           'TorchRuntime', 'OnnxRuntime', 'OnnxRuntimeInt8', 'torch_threads',
           'link_or_copy', 'quantize_onnx', 'runtime_operators']
