"""Slimmable-networks model zoo (US-Net, S-Net) and MutualNet checkpoints, converted
into this package's slim models.

Sources, read 2026-12-03: JiahuiYu/slimmable_networks ``models/us_mobilenet_v1.py``,
``us_mobilenet_v2.py``, ``s_mobilenet_v1.py``, ``s_mobilenet_v2.py``, ``s_resnet.py``,
``slimmable_ops.py``, ``MODEL_ZOO.md`` and ``apps/*.yml`` (the released width lists);
taoyang1122/MutualNet ``models/mobilenet_v1.py``, ``mobilenet_v2.py``, ``resnet.py``,
``slimmable_ops.py`` and ``apps/*.yml`` (MutualNet's official code, the same layouts).

**Layouts.** The three families share one key layout per architecture: a
``features`` ``nn.Sequential`` (stem ``features.0.{0: conv, 1: BN}``, then one
entry per block whose ``body`` holds conv/BN/activation triples, ResNet's
projection in ``shortcut``; MobileNetV2's last 1x1 conv in the entry after the
blocks) and ``classifier.0``, a linear layer. :func:`_mobilenet_v1_layout` and
its two siblings state, for every convolution, its name there and here
(``SlimMobileNetV1``, mmdet's ``MobileNetV2`` / ``ResNet`` names), the BN after it
and the channel rule the source applies to it.

**BN.** US-Net and MutualNet (``USBatchNorm2d``): one affine pair shared by all
widths, and running statistics per width of the file's ``width_mult_list`` in
``bn.<i>``, sized for that width. S-Net (``SwitchableBatchNorm2d``): a whole BN
(affine and statistics) per switch in ``bn.<i>``. MobileNetV2's last BN is a plain
``BatchNorm2d`` everywhere.

**Channels.** The sources round each layer's channels at width ``w`` with their own
``make_divisible``: US-Net ``make_divisible(C * w / ratio, 8, min 1) * ratio`` (the
``ratio`` of MobileNetV2's expansion layers is the expansion factor ``t``, so the
expanded count is ``t`` x the rounded block input), S-MobileNetV1 with min 8,
S-ResNet ``int(C * w)`` (its middle layers a quarter of the rounded output),
MutualNet divisor 1 (whole channels). This package rounds every layer with
:func:`~mutual_mm.ops.active_channels`. A width converts only where every layer
agrees; the others are refused, each with the layers that differ. Measured on the
released width lists: US-MobileNetV1 agrees at all 31 widths; US-MobileNetV2 at
1.0 only (its expansion layers differ at the 26 others, and it keeps the last
1x1 conv at 1280 channels at every width, which ``SlimMobileNetV2`` slims).

**What a converted checkpoint holds** (``ConversionResult.checkpoint``):

* ``state_dict``: the weights under the names of ``MutualImageClassifier`` (form
  ``'classifier'``: ``backbone.*`` and ``head.fc.*``; a detection config loads the
  backbone with ``init_cfg=dict(type='Pretrained', prefix='backbone.', ...)``) or of
  the bare backbone (form ``'backbone'``). The BN buffers are the source's full-width
  statistics.
* ``bn_calibration`` (:data:`~mutual_mm.deploy.CALIBRATION_KEY`; US-Net, classifier
  form): the source's per-width statistics, stored as this package's calibration
  of the subnet (width, 224 px), what ``tools/calibrate_bn.py`` writes, so
  ``CalibratedSubnetHook`` and the lookup table run those subnets at once.
* ``meta['mutual_learning']``: a :class:`~mutual_mm.engine.trained_space.TrainedSpace`
  record of what the source trained, restricted to what the converted model
  reproduces: the widths from 1.0 down to the first refused one, at 224 px.
* ``meta['converted_from']``: source, architecture, widths converted and refused.
"""
import dataclasses
import pickle
import zipfile
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch

from ..calibrated_subnet_hook import CALIBRATION_KEY
from ..subnet import Subnet
from ...engine.trained_space import META_KEY, TrainedSpace
from ...fileio import check_readable_checkpoint
from ...ops import active_channels, make_divisible
from ...registry import MODELS

ARCHS = ('mobilenet_v1', 'mobilenet_v2', 'resnet50')
FORMS = ('classifier', 'backbone')
#: the input size of the sources' full networks and of US-Net's calibration
SOURCE_SIZE = 224
#: provenance of a converted checkpoint, next to the trained-space record
CONVERTED_META_KEY = 'converted_from'
_BN_BUFFERS = ('running_mean', 'running_var')
_COUNTER = 'num_batches_tracked'
_TOL = 1e-6


@dataclass(frozen=True)
class SourceLayer:
    """One convolution of a source model and the BN after it, with their names
    here.

    Attributes:
        src, dst: module name of the convolution in the source / here.
        src_bn, dst_bn: module name of the BN after it.
        channels: its output channels at width 1.0. A depthwise convolution
            follows its input in both codebases, so it carries the channels,
            ratio and role of the convolution feeding it.
        ratio: US-Net's and MutualNet's ``ratio`` (the count is rounded at
            ``channels * w / ratio``, then multiplied back): the expansion factor
            of MobileNetV2's expansion layers, 0.25 for MutualNet's ResNet stem
            and bottleneck middles, else 1.
        role: ``'stem'``, ``'expand'``, ``'mid'`` (ResNet's bottleneck middle),
            ``'out'`` or ``'tail'`` (MobileNetV2's last 1x1 conv); S-ResNet's
            rule depends on it.
        fixed: the source keeps every channel at every width (MobileNetV2's
            last 1x1 conv; its BN is a plain ``BatchNorm2d``).
    """
    src: str
    dst: str
    src_bn: str
    dst_bn: str
    channels: int
    ratio: float = 1
    role: str = 'out'
    fixed: bool = False


def _follower(producer: SourceLayer, src: str, dst: str, src_bn: str,
              dst_bn: str) -> SourceLayer:
    """A depthwise convolution (and its BN) after ``producer``."""
    return dataclasses.replace(producer, src=src, dst=dst, src_bn=src_bn, dst_bn=dst_bn)


@dataclass(frozen=True)
class ArchLayout:
    """An architecture as the sources lay it out, and the backbone it becomes.

    Attributes:
        name: one of :data:`ARCHS`.
        backbone: config of the backbone the converted weights load into
            (``out_indices``: the last stage, which the classifier's head pools).
        feature_channels: channels of that last output at width 1.0.
        layers: every convolution with its BN, in the sources' order.
        notes: what a user of the converted checkpoint must know about it.
    """
    name: str
    backbone: dict
    feature_channels: int
    layers: Tuple[SourceLayer, ...]
    notes: Tuple[str, ...] = ()


def _mobilenet_v1_layout() -> ArchLayout:
    # the sources' block setting (channels, blocks); stage i is layer{i} here
    setting = ((64, 1), (128, 2), (256, 2), (512, 6), (1024, 2))
    stem = SourceLayer('features.0.0', 'stem.conv', 'features.0.1', 'stem.bn', 32,
                       role='stem')
    layers, producer, index = [stem], stem, 1
    for stage, (channels, blocks) in enumerate(setting, 1):
        for block in range(blocks):
            src, dst = f'features.{index}.body', f'layer{stage}.{block}'
            layers.append(_follower(producer, f'{src}.0', f'{dst}.depthwise_conv.conv',
                                    f'{src}.1', f'{dst}.depthwise_conv.bn'))
            producer = SourceLayer(f'{src}.3', f'{dst}.pointwise_conv.conv', f'{src}.4',
                                   f'{dst}.pointwise_conv.bn', channels)
            layers.append(producer)
            index += 1
    # the sources use ReLU6, SlimMobileNetV1's default is ReLU
    backbone = dict(type='SlimMobileNetV1', act_cfg=dict(type='ReLU6'), out_indices=(4, ))
    note = ('the sources\' MobileNetV1 uses ReLU6: build SlimMobileNetV1 with '
            'act_cfg=dict(type=\'ReLU6\')')
    return ArchLayout('mobilenet_v1', backbone, 1024, tuple(layers), (note, ))


def _mobilenet_v2_layout() -> ArchLayout:
    # the sources' block setting (t, c, n; strides as mmdet's); stage i is layer{i}
    setting = ((1, 16, 1), (6, 24, 2), (6, 32, 3), (6, 64, 4), (6, 96, 3), (6, 160, 3),
               (6, 320, 1))
    stem = SourceLayer('features.0.0', 'conv1.conv', 'features.0.1', 'conv1.bn', 32,
                       role='stem')
    layers, producer, index = [stem], stem, 1
    for stage, (expand, channels, blocks) in enumerate(setting, 1):
        for block in range(blocks):
            src, dst = f'features.{index}.body', f'layer{stage}.{block}'
            first = 0
            if expand != 1:  # mmdet, like the sources, has no expansion conv at t=1
                producer = SourceLayer(f'{src}.0', f'{dst}.expand_conv.conv', f'{src}.1',
                                       f'{dst}.expand_conv.bn', producer.channels * expand,
                                       ratio=expand, role='expand')
                layers.append(producer)
                first = 3
            layers.append(_follower(producer, f'{src}.{first}', f'{dst}.depthwise_conv.conv',
                                    f'{src}.{first + 1}', f'{dst}.depthwise_conv.bn'))
            producer = SourceLayer(f'{src}.{first + 3}', f'{dst}.linear_conv.conv',
                                   f'{src}.{first + 4}', f'{dst}.linear_conv.bn', channels)
            layers.append(producer)
            index += 1
    layers.append(SourceLayer(f'features.{index}.0', 'conv2.conv', f'features.{index}.1',
                              'conv2.bn', 1280, role='tail', fixed=True))
    backbone = dict(type='SlimMobileNetV2', widen_factor=1.0, out_indices=(7, ))
    return ArchLayout('mobilenet_v2', backbone, 1280, tuple(layers))


def _resnet50_layout() -> ArchLayout:
    stem = SourceLayer('features.0.0', 'conv1', 'features.0.1', 'bn1', 64, ratio=0.25,
                       role='stem')
    layers, index = [stem], 1
    for stage, (planes, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), 1):
        for block in range(blocks):
            src, dst = f'features.{index}', f'layer{stage}.{block}'
            mid = dict(channels=planes, ratio=0.25, role='mid')
            layers += [
                SourceLayer(f'{src}.body.0', f'{dst}.conv1', f'{src}.body.1', f'{dst}.bn1', **mid),
                SourceLayer(f'{src}.body.3', f'{dst}.conv2', f'{src}.body.4', f'{dst}.bn2', **mid),
                SourceLayer(f'{src}.body.6', f'{dst}.conv3', f'{src}.body.7', f'{dst}.bn3',
                            planes * 4)]
            if block == 0:  # the sources' shortcut where input and output differ
                layers.append(SourceLayer(f'{src}.shortcut.0', f'{dst}.downsample.0',
                                          f'{src}.shortcut.1', f'{dst}.downsample.1',
                                          planes * 4))
            index += 1
    backbone = dict(type='SlimResNet', depth=50, out_indices=(3, ))
    return ArchLayout('resnet50', backbone, 2048, tuple(layers))


_LAYOUTS = {'mobilenet_v1': _mobilenet_v1_layout, 'mobilenet_v2': _mobilenet_v2_layout,
            'resnet50': _resnet50_layout}
_HEAD_SRC, _HEAD_DST = 'classifier.0', 'head.fc'


def _grid(lo: float, hi: float, step: float) -> Tuple[float, ...]:
    return tuple(round(lo + i * step, 6) for i in range(int(round((hi - lo) / step)) + 1))


class SlimmableSource:
    """A family of source checkpoints: its BN layout, its channel rule, the width
    lists of its released files and what its training distilled. One subclass per
    family (:data:`SOURCES`)."""

    name: str = ''
    title: str = ''
    #: ``'shared'``: one affine pair, statistics per width; ``'private'``: a BN per width
    bn_layout: str = 'shared'
    #: the released ``width_mult_list`` per architecture (what ``bn.<i>`` index)
    default_widths: Dict[str, Tuple[float, ...]] = {}
    #: TrainedSpace.distill of the source's sub-networks
    distill: str = 'kl'
    #: why its widths below 1.0 cannot be reproduced whatever the channels; None: they can
    below_full_reason: Optional[str] = None
    #: its ``bn.<i>`` statistics are width i's own at 224 px (calibrated), so they
    #: become this package's calibrations
    calibrated_statistics: bool = False

    def channels(self, layer: SourceLayer, width: float, arch: str) -> int:
        """Output channels of ``layer`` at ``width`` in the source."""
        raise NotImplementedError

    def notes(self, arch: str) -> List[str]:
        """What a user of the converted checkpoint must know."""
        return []


class USNetSource(SlimmableSource):
    """US-Net (``us_mobilenet_v1.py``, ``us_mobilenet_v2.py``): calibrated per-width
    statistics, shared affine, US-Net's ``make_divisible`` (divisor 8, min 1)."""

    name, title = 'usnet', 'US-Net'
    calibrated_statistics = True  # the released *_calibrated.pt files
    default_widths = {'mobilenet_v1': _grid(0.25, 1.0, 0.025),   # us_mobilenet_v1_val.yml
                      'mobilenet_v2': _grid(0.35, 1.0, 0.025)}   # us_mobilenet_v2_val.yml

    def channels(self, layer, width, arch):
        if layer.fixed:
            return layer.channels
        # the source's expression, in its order (float rounding included)
        return int(make_divisible(layer.channels * width / layer.ratio, 8, 1) * layer.ratio)


class SNetSource(SlimmableSource):
    """S-Net (``s_mobilenet_v1.py``, ``s_mobilenet_v2.py``, ``s_resnet.py``): a whole
    BN per switch, channel lists computed per switch."""

    name, title = 'snet', 'S-Net'
    bn_layout = 'private'
    default_widths = {'mobilenet_v1': (0.25, 0.5, 0.75, 1.0),
                      'mobilenet_v2': (0.35, 0.5, 0.75, 1.0),
                      'resnet50': (0.25, 0.5, 0.75, 1.0)}
    distill = 'gt'  # every switch learns the labels
    below_full_reason = ('S-Net trains a private BN (affine parameters and statistics) '
                         'per switch; a shared-BN slim layer holds the full width\'s '
                         'affine parameters only')

    def channels(self, layer, width, arch):
        if layer.fixed:
            return layer.channels
        if arch == 'resnet50':  # int(64 w), int(4 planes w), middles a quarter of those
            if layer.role == 'mid':
                return int(layer.channels * 4 * width) // 4
            return int(layer.channels * width)
        if arch == 'mobilenet_v1':  # its _make_divisible has min_value=8
            return make_divisible(layer.channels * width, 8, 8)
        # MobileNetV2: the expansion is t x the rounded block input
        ratio = int(layer.ratio)
        return make_divisible(layer.channels // ratio * width, 8, 1) * ratio

    def notes(self, arch):
        return ['the converted model is S-Net\'s full width. Other widths need their BN '
                'statistics calibrated (tools/calibrate_bn.py --allow-untrained --widths ...) '
                'and still run on the full width\'s affine parameters: S-Net\'s private '
                'affine parameters of the other switches are lost']


class MutualNetSource(SlimmableSource):
    """MutualNet's official code (``models/mobilenet_v1.py``, ``mobilenet_v2.py``,
    ``resnet.py``): US-Net's layers with ``make_divisible`` to whole channels
    (divisor 1), statistics per width of its training ``width_mult_list``."""

    name, title = 'mutualnet', 'MutualNet'
    default_widths = {'mobilenet_v1': (0.25, 1.0),      # apps/mobilenet_v1.yml
                      'mobilenet_v2': (0.7, 0.9, 1.0),  # apps/mobilenet_v2.yml
                      'resnet50': (0.9, 1.0)}           # apps/resnet50.yml
    below_full_reason = ('MutualNet\'s statistics for widths below 1.0 are training-time '
                         'running averages over its mixed input sizes, not one subnet\'s')

    def channels(self, layer, width, arch):
        if layer.fixed:
            return layer.channels
        return int(make_divisible(layer.channels * width / layer.ratio, 1, 1) * layer.ratio)

    def notes(self, arch):
        return ['the converted model is MutualNet\'s full width; calibrate other widths '
                '(tools/calibrate_bn.py --allow-untrained --widths ...)']


SOURCES: Dict[str, SlimmableSource] = {
    source.name: source for source in (USNetSource(), SNetSource(), MutualNetSource())}


@dataclass
class ConversionResult:
    """What :func:`convert_slimmable_checkpoint` made.

    Attributes:
        checkpoint: the checkpoint to save (see the module docstring).
        model: config of the model ``checkpoint['state_dict']`` loads into
            strictly (a ``MutualImageClassifier`` or its backbone).
        widths: the widths at which the converted model computes what the source
            computes, with the source's statistics for each.
        refused: ``{width: reasons}`` for the source's other widths.
        notes: what a user must know about the converted model.
    """
    checkpoint: dict
    model: dict
    widths: Tuple[float, ...]
    refused: Dict[float, List[str]]
    notes: List[str]

    def summary(self, examples: int = 3) -> str:
        """Lines for a terminal: widths converted, widths refused (up to
        ``examples`` of their reasons, each once with the widths it refuses),
        notes."""
        lines = [f'converted widths: {", ".join(f"{w:g}" for w in self.widths)}']
        if self.refused:
            widths = ', '.join(f'{w:g}' for w in self.refused)
            lines.append(f'refused widths ({len(self.refused)}): {widths}')
            by_reason = {}
            for width, reasons in self.refused.items():
                by_reason.setdefault(reasons[0], []).append((width, len(reasons) - 1))
            for reason, refused in list(by_reason.items())[:examples]:
                names = ', '.join(f'{w:g}' for w, _ in refused)
                more = max(n for _, n in refused)
                more = f' (and up to {more} more)' if more else ''
                lines.append(f'  {names}: {reason}{more}')
        lines += [f'note: {note}' for note in self.notes]
        return '\n'.join(lines)


def load_source_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """The state dict of a source checkpoint file: its ``model`` entry (what the
    sources' ``train.py`` saves) or ``state_dict`` entry, or the file itself when
    it is a state dict; ``module.`` prefixes (DataParallel) removed. Loaded with
    ``weights_only=True``.

    Raises:
        FileNotFoundError, ValueError: no such file, an empty or truncated one,
            the model zoo's ``.pt.zip`` download not unzipped, objects other than
            tensors (a training checkpoint with its meters), or no state dict.
    """
    check_readable_checkpoint(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if not any(name.endswith('data.pkl') for name in names):
            raise ValueError(
                f'{path} is a zip archive of {names[:3]}, not a torch checkpoint: the '
                'model zoo\'s *.pt.zip downloads hold the .pt file; unzip it and convert '
                'that')
    try:
        loaded = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f'{path} holds objects other than tensors ({str(err).splitlines()[0][:200]}); '
            'a training checkpoint with optimizer and meters? Convert the released '
            'model file, or re-save its \'model\' entry alone') from err
    state = loaded
    for key in ('model', 'state_dict'):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state or not all(
            torch.is_tensor(v) for v in state.values()):
        raise ValueError(f'{path} holds no state dict (a dict of tensors, possibly under '
                         '\'model\' or \'state_dict\')')
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}


def _check_choice(what: str, value, valid: Iterable) -> None:
    valid = list(valid)
    if value not in valid:
        raise ValueError(f'convert_slimmable_checkpoint: {what}={value!r}; valid: {valid}')


def _expected_keys(layout: ArchLayout, source: SlimmableSource,
                   num_widths: int) -> List[str]:
    keys = []
    for layer in layout.layers:
        keys.append(f'{layer.src}.weight')
        if layer.fixed:
            keys += [f'{layer.src_bn}.{n}' for n in ('weight', 'bias') + _BN_BUFFERS]
        elif source.bn_layout == 'shared':
            keys += [f'{layer.src_bn}.weight', f'{layer.src_bn}.bias']
            keys += [f'{layer.src_bn}.bn.{i}.{n}' for i in range(num_widths) for n in _BN_BUFFERS]
        else:
            keys += [f'{layer.src_bn}.bn.{i}.{n}' for i in range(num_widths)
                     for n in ('weight', 'bias') + _BN_BUFFERS]
    return keys + [f'{_HEAD_SRC}.weight', f'{_HEAD_SRC}.bias']


def _count_widths(state: Dict[str, torch.Tensor], layout: ArchLayout) -> int:
    """How many ``bn.<i>`` the first BN layer holds."""
    prefix = f'{layout.layers[0].src_bn}.bn.'
    indices = {k[len(prefix):].split('.')[0] for k in state if k.startswith(prefix)}
    return len(indices)


def _check_keys(state: Dict[str, torch.Tensor], expected: List[str], what: str) -> None:
    optional = {k.rsplit('.', 1)[0] + f'.{_COUNTER}' for k in expected
                if k.endswith('running_mean')}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in set(expected) and k not in optional]
    problems = [f'{len(keys)} {kind} (e.g. {", ".join(keys[:3])})'
                for kind, keys in (('missing', missing), ('unexpected', unexpected)) if keys]
    if problems:
        raise ValueError(f'the file does not have the {what} layout: {"; ".join(problems)} '
                         f'of {len(expected)} expected keys. Check --from and --arch (a US-Net '
                         'file has shared BN weights, an S-Net file a whole BN per switch)')


def _check_bn_sizes(state, layout, source, source_widths) -> None:
    """Each ``bn.<i>`` must hold the source's channel count at ``source_widths[i]``:
    a width list that is not the file's is refused here."""
    name = 'running_mean'
    for layer in layout.layers:
        if layer.fixed:
            continue
        for i, width in enumerate(source_widths):
            held = state[f'{layer.src_bn}.bn.{i}.{name}'].numel()
            rule = source.channels(layer, width, layout.name)
            if held != rule:
                raise ValueError(
                    f'{layer.src_bn}.bn.{i} holds {held} channels, but {source.title}\'s '
                    f'rule gives {rule} at width {width:g} (bn.{i} of width_mult_list '
                    f'{list(source_widths)}): give the width_mult_list the file was '
                    'trained with (source_widths / --source-widths), or the file is not a '
                    f'1.0x {layout.name}')


def _disagreements(layout: ArchLayout, source: SlimmableSource, width: float) -> List[str]:
    reasons = []
    for layer in layout.layers:
        theirs = source.channels(layer, width, layout.name)
        ours = active_channels(layer.channels, width)
        if theirs != ours:
            why = ' (kept whole at every width there)' if layer.fixed else ''
            reasons.append(f'{layer.dst_bn} ({layer.role}): {theirs} channels in '
                           f'{source.title}{why}, {ours} here')
    return reasons


def _find(width: float, widths: Sequence[float]) -> Optional[int]:
    return next((i for i, w in enumerate(widths) if abs(w - width) <= _TOL), None)


def _bn_full(state, layer: SourceLayer, source: SlimmableSource, full: int
             ) -> Dict[str, torch.Tensor]:
    """The full-width tensors of ``layer``'s BN, under ``nn.BatchNorm2d``'s names."""
    if layer.fixed:
        prefix = affine = layer.src_bn
    elif source.bn_layout == 'shared':
        prefix, affine = f'{layer.src_bn}.bn.{full}', layer.src_bn
    else:
        prefix = affine = f'{layer.src_bn}.bn.{full}'
    out = {n: state[f'{affine}.{n}'] for n in ('weight', 'bias')}
    out.update({n: state[f'{prefix}.{n}'] for n in _BN_BUFFERS})
    out[_COUNTER] = state.get(f'{prefix}.{_COUNTER}', torch.tensor(0, dtype=torch.long))
    return out


def _bn_at(state, layer: SourceLayer, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
    prefix = layer.src_bn if layer.fixed else f'{layer.src_bn}.bn.{index}'
    return tuple(state[f'{prefix}.{n}'].detach().clone().float() for n in _BN_BUFFERS)


def _trained_space(source: SlimmableSource, source_widths: Sequence[float],
                   converted: Sequence[float]) -> TrainedSpace:
    """The source's widths from 1.0 down to the first one not converted: what the
    converted model reproduces, as a range deployment can check."""
    run = []
    for width in sorted(source_widths, reverse=True):
        if _find(width, converted) is None:
            break
        run.append(width)
    steps = [round(a - b, 6) for a, b in zip(run, run[1:])]
    return TrainedSpace(width_range=(min(run), max(run)),
                        width_step=min(steps) if steps else 0.05,
                        scales=[SOURCE_SIZE], frames=None, distill=source.distill)


def _refusals(layout: ArchLayout, source: SlimmableSource,
              source_widths: Sequence[float]) -> Dict[float, List[str]]:
    """``{width: reasons}`` for the widths the converted model cannot reproduce."""
    refused = {}
    for width in source_widths:
        reasons = _disagreements(layout, source, width)
        if source.below_full_reason and width < 1 - _TOL:
            reasons.insert(0, source.below_full_reason)
        if reasons:
            refused[width] = reasons
    return refused


def _chosen_widths(widths: Optional[Sequence[float]], source_widths: Sequence[float],
                   refused: Dict[float, List[str]], what: str) -> Tuple[float, ...]:
    """The widths to convert, largest first: the asked ones (each a source width that
    converts) or every one that converts; 1.0 always (the weights and BN buffers
    are the full network's)."""
    convertible = [w for w in source_widths if w not in refused]
    if widths is None:
        return tuple(sorted(set(convertible) | {1.0}, reverse=True))
    chosen = []
    for width in widths:
        index = _find(float(width), source_widths)
        if index is None:
            raise ValueError(f'width {width} is not one of the {what} file\'s widths '
                             f'{list(source_widths)}')
        reasons = refused.get(source_widths[index])
        if reasons:
            more = f' (and {len(reasons) - 3} more)' if len(reasons) > 3 else ''
            raise ValueError(f'width {width} does not convert exactly from {what}: '
                             f'{"; ".join(reasons[:3])}{more}. Widths that convert: '
                             f'{convertible}')
        chosen.append(source_widths[index])
    return tuple(sorted(set(chosen) | {1.0}, reverse=True))


def _calibration(state, layout: ArchLayout, source_widths: Sequence[float],
                 widths: Sequence[float], prefix: str) -> dict:
    """US-Net's statistics of each of ``widths`` as a checkpoint's ``bn_calibration``
    (what ``calibrate_subnets`` returns) for subnet (width, 224 px); BN layers under
    ``prefix`` (the classifier's ``backbone.``)."""
    return {Subnet(w, SOURCE_SIZE).key: dict(
        subnet=Subnet(w, SOURCE_SIZE).as_dict(),
        stats={f'{prefix}{layer.dst_bn}': _bn_at(state, layer, _find(w, source_widths))
               for layer in layout.layers})
            for w in widths}


def convert_slimmable_checkpoint(state: Dict[str, torch.Tensor], source: str, arch: str,
                                 form: str = 'classifier',
                                 widths: Optional[Sequence[float]] = None,
                                 source_widths: Optional[Sequence[float]] = None,
                                 verify: bool = True) -> ConversionResult:
    """Convert a source state dict (:func:`load_source_state_dict`) into a
    checkpoint of this package's slim model.

    Args:
        state: the source's state dict (no ``module.`` prefixes).
        source: ``'usnet'``, ``'snet'`` or ``'mutualnet'`` (:data:`SOURCES`).
        arch: ``'mobilenet_v1'``, ``'mobilenet_v2'`` or ``'resnet50'``.
        form: ``'classifier'`` (``MutualImageClassifier`` names, head included,
            US-Net's per-width statistics as calibrations) or ``'backbone'``
            (the bare backbone's names, full-width statistics only).
        widths: the widths to convert (1.0 always is); each must be one of
            ``source_widths`` that converts exactly. Default: every such width.
        source_widths: the ``width_mult_list`` the file was written with, which
            its ``bn.<i>`` index; default: that of the released files.
        verify: build the target model and load the weights into it strictly
            (needs the backbone's host library: mmdet for MobileNetV2 and ResNet).

    Returns:
        A :class:`ConversionResult`.

    Raises:
        ValueError: an unknown source, arch or form, a combination the source never
            released, keys that do not fit the layout (counts and examples), a width
            list that does not fit the file, or asked widths that are not the
            source's or do not convert exactly (with the layers that differ).
    """
    _check_choice('source', source, SOURCES)
    _check_choice('arch', arch, ARCHS)
    _check_choice('form', form, FORMS)
    src = SOURCES[source]
    if arch not in src.default_widths:
        raise ValueError(f'convert_slimmable_checkpoint: {src.title} released no {arch}; '
                         f'valid archs for {source}: {sorted(src.default_widths)}')
    layout = _LAYOUTS[arch]()
    what = f'{src.title} {arch}'

    num_widths = _count_widths(state, layout)
    _check_keys(state, _expected_keys(layout, src, max(num_widths, 1)), what)
    source_widths = tuple(round(float(w), 6) for w in
                          (source_widths or src.default_widths[arch]))
    if len(source_widths) != num_widths:
        raise ValueError(
            f'the file holds {num_widths} BN statistics per layer (bn.0..bn.{num_widths - 1}) '
            f'but the width list has {len(source_widths)}: {list(source_widths)}; give '
            'the width_mult_list the file was trained with (source_widths / --source-widths)')
    full = _find(1.0, source_widths)
    if full is None:
        raise ValueError(f'the width list {list(source_widths)} has no 1.0: the converted '
                         'model needs the full width\'s BN')
    _check_bn_sizes(state, layout, src, source_widths)

    refused = _refusals(layout, src, source_widths)
    chosen = _chosen_widths(widths, source_widths, refused, what)

    prefix = 'backbone.' if form == 'classifier' else ''
    weights = {}
    for layer in layout.layers:
        weights[f'{prefix}{layer.dst}.weight'] = state[f'{layer.src}.weight']
        for name, tensor in _bn_full(state, layer, src, full).items():
            weights[f'{prefix}{layer.dst_bn}.{name}'] = tensor
    head = state[f'{_HEAD_SRC}.weight']
    if form == 'classifier':
        weights[f'{_HEAD_DST}.weight'] = head
        weights[f'{_HEAD_DST}.bias'] = state[f'{_HEAD_SRC}.bias']
    weights = {k: v.detach().clone() for k, v in weights.items()}

    backbone = dict(layout.backbone)
    model = backbone if form == 'backbone' else dict(
        type='MutualImageClassifier', backbone=backbone,
        head=dict(type='MutualLinearClsHead', num_classes=int(head.shape[0]),
                  in_channels=layout.feature_channels))
    space = _trained_space(src, source_widths, chosen)
    meta = {META_KEY: space.as_meta(),
            CONVERTED_META_KEY: dict(source=source, arch=arch, form=form,
                                     source_widths=list(source_widths), widths=list(chosen),
                                     refused={f'{w:g}': r for w, r in refused.items()},
                                     model=model)}
    checkpoint = dict(state_dict=weights, meta=meta)
    notes = src.notes(arch) + list(layout.notes)
    if src.calibrated_statistics and form == 'classifier':
        checkpoint[CALIBRATION_KEY] = _calibration(state, layout, source_widths, chosen,
                                                   prefix)
    elif src.calibrated_statistics:
        notes.append(f'the backbone form keeps the full width\'s BN statistics only; '
                     f'{src.title}\'s per-width statistics go into the classifier form '
                     '(--form classifier)')
    if verify:
        _load_strictly(model, weights)
    return ConversionResult(checkpoint, model, chosen, refused, notes)


def _load_strictly(model_cfg: dict, weights: Dict[str, torch.Tensor]) -> None:
    """Build ``model_cfg`` and load ``weights`` into it strictly.

    Raises:
        ValueError: what does not fit, as torch names it.
    """
    model = MODELS.build(model_cfg)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise ValueError(f'the converted weights do not load into {model_cfg["type"]}: '
                         f'{err}') from err
