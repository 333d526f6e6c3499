"""The per-stage latency table: a subnet's latency in a runtime predicted as
the sum of its backbone stages' latencies plus the rest of the model.

Each stage (:meth:`~mutual_mm.models.backbones.base.SlimBackboneMixin.width_stages`)
is timed alone in the runtime (:meth:`~mutual_mm.deploy.runtimes.Runtime.module_latency_ms`)
as a static module (plain layers, :func:`~mutual_mm.ops.export_static`), on the
input it really receives (captured by forward hooks at a subnet with the
previous stage at the input width), for every (input width, stage width) pair
of the search grid and every view. The rest (head, pooling, what lies between
stages) is one entry per (view, last stage's width): the end-to-end latency of
the uniform subnet minus the sum of its stages. :meth:`StageLatencyTable.check`
measures random stage-width subnets end to end and reports the prediction error.
"""
import math
import random
import tempfile
import os.path as osp
import statistics
from typing import Callable, List, Optional, Sequence

import torch

from ...hosts import HostForward, host_of, set_model_width
from ...models.slimming import find_slim_backbone, unwrap_model
from ...ops import export_static, normalize_width
from ..build_table import export_and_time
from ..runtimes import SubnetModel
from ..subnet import Subnet

FIRST = '-'  #: the input width of the first stage (the network's input)


def view_key(scale, frames) -> str:
    """``'s32'``, ``'s32_f4'``: a subnet key without its width."""
    return Subnet(1.0, scale, frames).key.split('_', 1)[1]


def _w(width: Optional[float]) -> str:
    return FIRST if width is None else f'{width:g}'


class StageLatencyTable:
    """The table as saved in ``latency_table.json``: ``stage_names``,
    ``stages[view][stage]['in>out']`` and ``rest[view][width]`` in ms; the
    search adds ``identity`` (runtime, threads, grid, views: what a resume
    must match) and ``check`` (the end-to-end comparison)."""

    def __init__(self, data: dict):
        self.data = data

    @property
    def stages(self) -> List[str]:
        return self.data['stage_names']

    def predict(self, subnet: Subnet) -> float:
        """Predicted latency (ms) of ``subnet``: rest + the sum of its stages."""
        widths = subnet.width if subnet.stage_widths else (subnet.width,) * len(self.stages)
        view = view_key(subnet.scale, subnet.frames)
        ms = self.data['rest'][view][_w(widths[-1])]
        for i, stage in enumerate(self.stages):
            before = widths[i - 1] if i else None
            ms += self.data['stages'][view][stage][f'{_w(before)}>{_w(widths[i])}']
        return ms


def _stage_inputs(model, inputs, modules: dict) -> dict:
    """``{module name: its input}`` of one forward of the model's exported part."""
    captured, handles = {}, []

    def hook(name):
        def capture(module, args):
            if len(args) != 1 or not torch.is_tensor(args[0]):
                raise ValueError(f'latency table: stage module {name} takes '
                                 f'{len(args)} inputs; a stage is timed module by '
                                 'module on one tensor each')
            captured.setdefault(name, args[0].detach())
        return capture
    for name, module in modules.items():
        handles.append(module.register_forward_pre_hook(hook(name)))
    try:
        with torch.no_grad():
            HostForward(host_of(model), 'exported')(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return captured


def build_latency_table(model, runtime, widths: Sequence[float], views: Sequence,
                        example: Callable, folder: str,
                        progress: Callable[[str], None] = print) -> StageLatencyTable:
    """Time every stage entry and every rest entry (see the module docstring).

    Args:
        model: the host model (eval mode).
        runtime: a built :class:`~mutual_mm.deploy.runtimes.Runtime` that times
            modules.
        widths: the search grid, ascending.
        views: ``(scale, frames)`` pairs.
        example: ``example(subnet) -> ([(inputs, samples)], batch)``: one input
            at the subnet's view, the model put at the subnet.
        folder: where runtime files are written (temporary files inside it).
    """
    model = unwrap_model(model).eval()
    backbone = find_slim_backbone(model)
    stage_modules = backbone.width_stages()
    if not stage_modules:
        raise ValueError(f'{type(backbone).__name__} defines no width_stages(): a '
                         'per-stage latency table (and a stage-width search) needs them')
    names = list(stage_modules)
    hi = widths[-1]
    table = dict(stages={}, rest={})
    with tempfile.TemporaryDirectory(dir=folder, prefix='.latency_') as tmp:
        for scale, frames in views:
            view = view_key(scale, frames)
            examples, _ = example(Subnet(hi, scale, frames))
            inputs = examples[0][0]
            entries = table['stages'][view] = {}
            for i, stage in enumerate(names):
                modules = {n: backbone.get_submodule(n) for n in stage_modules[stage]}
                entries[stage] = {}
                for before in ([None] if i == 0 else widths):
                    for width in widths:
                        subnet_widths = [hi] * len(names)
                        if i:
                            subnet_widths[i - 1] = before
                        subnet_widths[i] = width
                        set_model_width(model, normalize_width(subnet_widths))
                        captured = _stage_inputs(model, inputs, modules)
                        ms = 0.0
                        for j, (name, module) in enumerate(modules.items()):
                            static = export_static(module, captured[name]).eval()
                            ms += runtime.module_latency_ms(
                                static, captured[name], osp.join(tmp, f'part{j}.onnx'))
                        entries[stage][f'{_w(before)}>{_w(width)}'] = ms
                progress(f'latency table: {view} {stage} timed '
                         f'({len(entries[stage])} entries)')
            table['rest'][view] = {}
            partial = StageLatencyTable(dict(stage_names=names, stages=table['stages'],
                                             rest={view: {_w(w): 0.0 for w in widths}}))
            for width in widths:
                subnet = Subnet(width, scale, frames)
                ms = end_to_end_ms(model, runtime, subnet, example, tmp)
                table['rest'][view][_w(width)] = ms - partial.predict(subnet)
    table['stage_names'] = names
    return StageLatencyTable(table)


def end_to_end_ms(model, runtime, subnet: Subnet, example: Callable, folder: str) -> float:
    """``subnet``'s latency measured whole in ``runtime`` (its exported model)."""
    examples, batch = example(subnet)
    target = SubnetModel(unwrap_model(model), subnet, examples, batch)
    return export_and_time(runtime, target, folder)[1]


def check_latency_table(table: StageLatencyTable, model, runtime, widths: Sequence[float],
                        views: Sequence, example: Callable, folder: str, samples: int = 8,
                        seed: int = 0) -> dict:
    """Measure ``samples`` random stage-width subnets end to end and compare
    with :meth:`StageLatencyTable.predict`: each one's numbers and the mean
    and max absolute error in %."""
    rng = random.Random(seed)
    rows, seen = [], set()
    num_stages = len(table.stages)
    with tempfile.TemporaryDirectory(dir=folder, prefix='.latency_') as tmp:
        for _ in range(samples * 10):
            if len(rows) == samples:
                break
            scale, frames = views[rng.randrange(len(views))]
            subnet = Subnet(normalize_width([rng.choice(widths) for _ in range(num_stages)]),
                            scale, frames)
            if subnet.key in seen:
                continue
            seen.add(subnet.key)
            measured = end_to_end_ms(model, runtime, subnet, example, tmp)
            predicted = table.predict(subnet)
            rows.append(dict(key=subnet.key, predicted_ms=predicted, measured_ms=measured,
                             error_pct=100.0 * abs(predicted - measured) / measured))
    errors = [r['error_pct'] for r in rows]
    return dict(subnets=rows,
                mean_abs_error_pct=statistics.mean(errors) if errors else math.nan,
                max_abs_error_pct=max(errors) if errors else math.nan)
