"""What a deploy runtime is: the registry, the base class and what it is given.

A runtime runs a static subnet somewhere (PyTorch, ONNX Runtime, ONNX Runtime
on INT8 weights and activations, ...). Each supplies three things for one
subnet: :meth:`Runtime.export` (the artifact that runtime runs: a file, or the
model itself), :meth:`Runtime.latency_ms` (one input's median wall time there)
and :meth:`Runtime.evaluate` (the config's metric on the test set, run there).
The lookup table (:func:`~mutual_mm.deploy.build_lookup_table`) and the export
tool ask only these; the tools list :func:`runtime_names` as their choices. A
new runtime is one file in this package: a :class:`Runtime` subclass
registered with ``@RUNTIMES.register_module(name=...)`` and imported by the
package's ``__init__``.
"""
import os
from typing import Any, Callable, Dict, List, Optional

from mmengine.registry import Registry
from torch import nn

from ..onnx_export import check_threads
from ..subnet import Subnet

RUNTIMES = Registry('mutual_mm deploy runtime')

#: the precisions a runtime may compute in (the table's ``precision`` column)
PRECISIONS = ('fp32', 'int8')


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    return (len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
            else os.cpu_count() or 1)


class SubnetModel:
    """One subnet as a runtime receives it: the model at the subnet and its data.

    Args:
        model: the host model (unwrapped, eval mode) at ``subnet``, its calibrated
            BN statistics in place: the dynamic model (the table) or the static
            one (the export tool; then give it as ``static`` too).
        subnet: the subnet.
        examples: ``(inputs, data_samples)`` of each input of one test batch,
            preprocessed, batch 1 each (export traces the first; latency runs all).
        batch: that test batch as the loader gives it (PyTorch's latency).
        static: the static subnet (:func:`~mutual_mm.deploy.export.export_subnet`),
            if already made; else made from ``model`` on first use.
        test_loader: a zero-argument callable returning the test loader at the
            subnet's input (what :meth:`Runtime.evaluate` scores).
        calibration_loader: the same for the config's calibration data (training
            images through the test pipeline at the subnet's input, as BN
            calibration draws them: :func:`calibration_dataloader_cfg`).
        evaluator_cfg: the config's ``test_evaluator``.
        num_batches: calibration batches a runtime that calibrates (INT8) uses.
    """

    def __init__(self, model: nn.Module, subnet: Subnet, examples: List, batch=None,
                 static: Optional[nn.Module] = None,
                 test_loader: Optional[Callable[[], Any]] = None,
                 calibration_loader: Optional[Callable[[], Any]] = None,
                 evaluator_cfg=None, num_batches: int = 10):
        self.model, self.subnet, self.examples, self.batch = model, subnet, examples, batch
        self._static = static
        self._test_loader, self._calibration_loader = test_loader, calibration_loader
        self.evaluator_cfg, self.num_batches = evaluator_cfg, num_batches

    def static_model(self) -> nn.Module:
        """The static subnet (plain layers of the reduced shapes), made once."""
        if self._static is None:
            from ..export import export_subnet
            self._static = export_subnet(self.model, self.subnet.width,
                                         tuple(self.examples[0][0].shape)).eval()
        return self._static

    def test_loader(self):
        return self._need(self._test_loader, 'test_loader')

    def calibration_loader(self):
        return self._need(self._calibration_loader, 'calibration_loader')

    def evaluator(self):
        """A new mmengine ``Evaluator`` of the config's test metric."""
        import copy

        from mmengine.evaluator import Evaluator
        self._need(self.evaluator_cfg, 'evaluator_cfg')
        return Evaluator(copy.deepcopy(self.evaluator_cfg))

    def _need(self, value, name: str):
        if value is None:
            raise ValueError(f'SubnetModel of {self.subnet.key}: no {name} given (a '
                             'runtime that evaluates or calibrates needs it)')
        return value() if callable(value) else value


class Runtime:
    """Where a static subnet runs. Subclass per runtime; register with
    ``@RUNTIMES.register_module(name=NAME)``, ``NAME`` also set as ``name``.

    Class attributes a runtime sets:
        name: the registry name; the table's ``latency_runtime`` column.
        precision: what it computes in (one of :data:`PRECISIONS`): the table's
            ``precision`` column.
        file_suffix: the exported file of a subnet is ``<subnet key><suffix>``
            in the table's folder; None: nothing is written (the model runs as
            it is).
        metric_in_runtime: True when the table's metric of its rows must be
            measured by :meth:`evaluate` (outputs that differ from PyTorch's
            beyond float rounding); False: PyTorch's test of the subnet serves
            (the same numbers up to float rounding, checked at export).

    Args:
        threads: CPU threads latency and evaluation run with (None:
            :meth:`default_threads`); recorded in the table.
        repeats: timed runs per input for latency (after ``warmup``).
    """
    name: str = ''
    precision: str = 'fp32'
    file_suffix: Optional[str] = None
    metric_in_runtime: bool = False

    def __init__(self, threads: Optional[int] = None, repeats: int = 10, warmup: int = 2):
        self.threads = check_threads(threads) or self.default_threads()
        self.repeats, self.warmup = repeats, warmup

    def default_threads(self) -> int:
        """The threads used when none are given (every CPU this process may use)."""
        return usable_cpus()

    def check_model(self, model: nn.Module) -> None:
        """Refuse, before any work, a model this runtime cannot run
        (``ValueError`` saying why and what to use instead)."""

    def export(self, target: SubnetModel, path: Optional[str] = None):
        """The artifact this runtime runs for ``target`` (written to ``path``
        when the runtime writes a file); :meth:`latency_ms` and :meth:`evaluate`
        take it."""
        raise NotImplementedError

    def latency_ms(self, artifact, target: SubnetModel) -> float:
        """Median wall time (ms) of one input of ``target.examples``."""
        raise NotImplementedError

    def evaluate(self, artifact, target: SubnetModel) -> Dict[str, float]:
        """The config's test metrics of ``artifact`` run here over the test set."""
        raise NotImplementedError

    def module_latency_ms(self, module: nn.Module, inputs, path: Optional[str] = None) -> float:
        """Median wall time (ms) of one part of a static subnet (plain torch
        layers, e.g. one backbone stage: what a per-stage latency table times)
        run here on ``inputs`` (one tensor, batch 1: the input that part
        receives in the subnet). A runtime that writes files writes the part
        to ``path``. Default: refused, naming the runtime."""
        raise ValueError(f'runtime {self.name!r} does not time parts of a model '
                         '(module_latency_ms); runtimes that do: '
                         f'{", ".join(map(repr, module_timing_runtimes()))}')


def module_timing_runtimes() -> List[str]:
    """The registered runtimes that time parts of a model
    (:meth:`Runtime.module_latency_ms`)."""
    return sorted(name for name, cls in RUNTIMES.module_dict.items()
                  if cls.module_latency_ms is not Runtime.module_latency_ms)


def runtime_names() -> List[str]:
    """The registered runtimes, sorted: what the tools offer."""
    return sorted(RUNTIMES.module_dict)


def runtime_class(name: str) -> type:
    """The runtime registered as ``name``; ``ValueError`` listing the
    registered ones otherwise."""
    if not isinstance(name, str) or name not in RUNTIMES.module_dict:
        raise ValueError(f'runtime {name!r} is not registered; valid: '
                         f'{", ".join(map(repr, runtime_names()))} (a new runtime is one '
                         'file in mutual_mm/deploy/runtimes/)')
    return RUNTIMES.module_dict[name]


def build_runtime(name: str, **kwargs) -> Runtime:
    """The runtime registered as ``name``, built with ``kwargs``
    (``threads``, ``repeats``, ...)."""
    return runtime_class(name)(**kwargs)
