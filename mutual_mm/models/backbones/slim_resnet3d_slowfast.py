"""SlowFast with a width/space/time-adaptive Slow pathway (paper §4.2.2)."""
import math
from itertools import product
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmaction.models.backbones import ResNet3dSlowFast
from torch import nn

from ...ops import SlimInputMixin, active_channels, convert_to_slim
from ...registry import MODELS
from ...utils import constructor_default
from ..fusion import AdaptiveFusion, uniform_time_positions
from .base import ViewOwningBackbone, residual_stages


@MODELS.register_module()
class SlimResNet3dSlowFast(ViewOwningBackbone, ResNet3dSlowFast):
    """mmaction2's :class:`~mmaction.models.backbones.ResNet3dSlowFast` (e.g.
    SlowFast-4x16 R50, alpha=8, beta=1/8) where only the Slow pathway adapts.

    The Slow pathway is width-slimmable and can run on fewer frames and a smaller
    spatial size; the Fast pathway always runs whole on the full clip. Every
    lateral connection goes through :class:`~mutual_mm.models.AdaptiveFusion`.
    Same constructor arguments and state-dict keys as the stock backbone (stock
    checkpoints load strictly); identical to it at width 1.0 and full input.

    The Slow pathway's input subnets (its "views", chosen per sub-network
    by :class:`~mutual_mm.engine.MutualLearningHook`, since the data must stay
    whole for the Fast pathway) are all pairs of:

    Args:
        slow_size_factors (Sequence[float]): spatial factors of the Slow input,
            the first the full one. Defaults to (1, 178/224, 142/224): the paper's
            224/178/142 (gamma_s 1, 0.8, 0.63).
        slow_frame_factors (Sequence[float]): temporal factors of the Slow input
            (frames = round(factor * T_slow), at least 1). Defaults to
            (1, 5/8, 3/8): the paper's 8/5/3 frames for an 8-frame Slow pathway.
        slow_input (tuple, optional): ``(size, frames)`` of the Slow input at
            deployment, see :meth:`set_slow_input` (how a statically exported
            subnet keeps its Slow input). Defaults to None (the views).
        **kwargs: the arguments of ``ResNet3dSlowFast``.

    At deployment a subnet sets the Slow input in absolute terms with
    :meth:`set_slow_input` (e.g. 178 px, 2 frames); that setting takes precedence
    over the training view until :meth:`set_input_view` is called again (the
    training hook does so for every cohort member), which clears it.

    The head's input is ``(slow, fast)``; mmaction2's ``SlowFastHead`` pools and
    concatenates ``[fast | slow]``: its classifier keeps its FIRST columns for the
    Fast features (see :meth:`adapt_consumer`).

    Stage widths (see :meth:`width_stages`) are the Slow pathway's: stages
    ``stem`` (``slow_path.conv1``), ``layer1`` .. ``layer4`` (``slow_path.layer*``;
    every stage's first block reads ``[slow | fast]`` through a projection
    shortcut, so each residual sum lies in one stage). The Fast pathway and
    the lateral convs never slim, so a stage's first block keeps its last (Fast)
    input columns whatever the previous stage's width.
    """

    def __init__(self, *args,
                 slow_size_factors: Sequence[float] = (1.0, 178 / 224, 142 / 224),
                 slow_frame_factors: Sequence[float] = (1.0, 5 / 8, 3 / 8),
                 slow_input: Optional[Sequence[Optional[int]]] = None, **kwargs):
        for name, factors in (('slow_size_factors', slow_size_factors),
                              ('slow_frame_factors', slow_frame_factors)):
            if not factors or any(not 0 < f <= 1 for f in factors) or factors[0] != 1.0:
                raise ValueError(f'{name}={tuple(factors)!r}: valid are factors in (0, 1], '
                                 'the first 1.0 (the full input)')
        super().__init__(*args, **kwargs)
        if not self.slow_path.lateral:
            raise ValueError('SlimResNet3dSlowFast needs lateral connections '
                             "(slow_pathway=dict(lateral=True, ...))")
        if self.slow_path.lateral_inv or self.slow_path.lateral_norm:
            raise ValueError('SlimResNet3dSlowFast supports the standard lateral '
                             'convolution only (lateral_inv=False, lateral_norm=False)')
        self.input_views: List[Tuple[float, float]] = list(
            product(slow_size_factors, slow_frame_factors))
        self.input_view = 0
        self.slow_input: Optional[Tuple[Optional[int], Optional[int]]] = None
        self.fusion = AdaptiveFusion()
        self.make_slim()
        if slow_input is not None:
            self.set_slow_input(*slow_input)

    def _lateral_names(self) -> List[str]:
        names = ['conv1_lateral'] if hasattr(self.slow_path, 'conv1_lateral') else []
        return names + list(self.slow_path.lateral_connections)

    def make_slim(self) -> None:
        # Only the Slow pathway slims; its lateral convs read the whole Fast pathway.
        convert_to_slim(self.slow_path, skip=self._lateral_names(), strict=True)
        for lateral, stage in zip(self._lateral_names(), self.slow_path.res_layers):
            fast_channels = getattr(self.slow_path, lateral).conv.out_channels
            block = getattr(self.slow_path, stage)[0]
            for conv in (block.conv1.conv, getattr(block.downsample, 'conv', None)):
                if conv is not None:  # [slow | fast]: the fast columns are the LAST
                    conv.set_input_layout(fast_channels, 'last')

    # ------------------------------------------------------------- subnet
    # set_width/width: SlimBackboneMixin's; only the Slow pathway has slim layers
    def width_stages(self) -> Dict[str, List[str]]:
        stages = residual_stages(self.slow_path, ['conv1'], self.slow_path.res_layers)
        return {stage: [f'slow_path.{m}' for m in modules]
                for stage, modules in stages.items()}

    def set_input_view(self, index: int) -> None:
        """Run the Slow pathway on input view ``index`` of :attr:`input_views`."""
        if not 0 <= index < len(self.input_views):
            raise ValueError(f'input view {index} is not in 0..{len(self.input_views) - 1}')
        self.input_view = index
        self.slow_input = None

    def set_slow_input(self, size: Optional[int] = None,
                       frames: Optional[int] = None) -> None:
        """Run the Slow pathway on ``size`` px and ``frames`` frames (deployment).

        Absolute terms, as a subnet (:class:`mutual_mm.deploy.Subnet`'s
        ``scale``/``frames``) states them: ``size`` is the SHORT side of the Slow
        input (a non-square clip keeps its aspect ratio: the long side becomes
        ``round(long * size / short)``; a square one becomes ``size x size``),
        ``frames`` its number of frames, taken at the uniform time positions the
        views use. None keeps that dimension whole (the Slow input as the stock
        backbone makes it from the clip). A size or frame count above the clip's
        upsamples (no trained view does). The Fast pathway is never affected.

        Overrides the training view (:attr:`input_view` is reset to 0) until the
        next :meth:`set_input_view`; ``set_slow_input()`` is the full Slow input.
        """
        for name, value in (('size', size), ('frames', frames)):
            if value is not None and (isinstance(value, bool) or
                                      not isinstance(value, int) or value <= 0):
                raise ValueError(f'set_slow_input: {name}={value!r}; valid: a positive '
                                 'int (a SlowFast subnet sets the short side of '
                                 'the Slow input), or None for the whole input')
        self.input_view = 0
        self.slow_input = None if size is None and frames is None else (size, frames)

    # ------------------------------------------- as a subnet sees it (deploy)
    def set_subnet_input(self, scale: Optional[int], frames: Optional[int]) -> None:
        """A subnet's ``scale``/``frames`` are the Slow input's short side and
        frames (see :meth:`set_slow_input`)."""
        self.set_slow_input(self._check_subnet_scale(scale), frames)

    @classmethod
    def subnet_input_cfg(cls, backbone_cfg: dict, scale: Optional[int],
                         frames: Optional[int]) -> None:
        """The config twin of :meth:`set_subnet_input`: ``slow_input`` in the
        backbone's config (how an exported subnet keeps its Slow input)."""
        scale = cls._check_subnet_scale(scale)
        backbone_cfg['slow_input'] = (None if scale is None and frames is None
                                      else [scale, frames])

    @staticmethod
    def _check_subnet_scale(scale):
        if isinstance(scale, (tuple, list)):
            raise ValueError(f'scale {tuple(scale)}: SlimResNet3dSlowFast takes the short '
                             'side of its Slow input as one int, not a (w, h) pair')
        return scale

    @classmethod
    def view_input_sizes(cls, backbone_cfg: dict, full_size: Optional[int],
                         clip_len: Optional[int]):
        """(sizes, frames) of the Slow input views a config of this backbone
        trains, in absolute terms, for a clip of ``full_size`` px (short side)
        and ``clip_len`` frames (None: not asked): each factor gives
        ``max(1, round(factor * full))`` (the rounding of :meth:`forward`),
        duplicates dropped. E.g. SlowFast-4x16 (224 px, 32 frames, rate 8):
        sizes [224, 178, 142], frames [4, 2] (5/8 and 3/8 of 4 frames both
        round to 2)."""
        def arg(name):
            return backbone_cfg[name] if name in backbone_cfg else \
                constructor_default(cls, name)

        sizes = frames = None
        if full_size is not None:
            sizes = list(dict.fromkeys(cls.view_input(full_size, 1, f, 1.0)[0]
                                       for f in arg('slow_size_factors')))
        if clip_len is not None:
            full = cls.slow_frames_of(clip_len, arg('resample_rate'))
            frames = list(dict.fromkeys(cls.view_input(1, full, 1.0, f)[1]
                                        for f in arg('slow_frame_factors')))
        return sizes, frames

    @staticmethod
    def slow_frames_of(clip_len: int, resample_rate: int) -> int:
        """Frames of the full Slow input for a ``clip_len``-frame clip (the nearest
        temporal resampling of :meth:`forward`: ``floor(clip_len / rate)``)."""
        return math.floor(clip_len * (1.0 / resample_rate))

    @staticmethod
    def view_input(size: int, frames: int, size_factor: float,
                   frame_factor: float) -> Tuple[int, int]:
        """(size, frames) of a view of a ``size``-px, ``frames``-frame Slow input:
        the rounding of :meth:`_downscale_slow_input`."""
        return max(1, round(size_factor * size)), max(1, round(frame_factor * frames))

    @property
    def full_out_channels(self) -> Tuple[int, ...]:
        return (self.slow_path.feat_dim, self.fast_path.feat_dim)

    def out_channels_at(self, width: float) -> Tuple[int, ...]:
        return (active_channels(self.slow_path.feat_dim, width), self.fast_path.feat_dim)

    def adapt_consumer(self, consumer: nn.Module) -> None:
        """SlowFastHead pools and concatenates ``[fast | slow]``: a classifier
        reading both keeps its first (Fast) columns fixed."""
        slow, fast = self.full_out_channels
        for module in consumer.modules():
            if isinstance(module, SlimInputMixin) and \
                    getattr(module, 'in_features', None) == slow + fast:
                module.set_input_layout(fast, 'first')

    # ------------------------------------------------------------------ forward
    def _slow_target(self, t: int, h: int, w: int) -> Tuple[int, Tuple[int, int]]:
        """(frames, (height, width)) of the Slow input, from the deployment
        setting if there is one, else from the training view."""
        if self.slow_input is not None:
            size, frames = self.slow_input
            frames = t if frames is None else frames
            if size is None:
                return frames, (h, w)
            short = min(h, w)
            return frames, ((size, max(1, round(w * size / h))) if h == short
                            else (max(1, round(h * size / w)), size))
        size_factor, frame_factor = self.input_views[self.input_view]
        frames = max(1, round(frame_factor * t))
        return frames, (max(1, round(size_factor * h)), max(1, round(size_factor * w)))

    def _downscale_slow_input(self, x_slow: torch.Tensor) -> torch.Tensor:
        # int(): under jit tracing (FLOPs counting) sizes are tensors; they are
        # constants of the subnet
        t, h, w = (int(s) for s in x_slow.shape[2:])
        frames, size = self._slow_target(t, h, w)
        if frames != t:
            x_slow = x_slow.index_select(2, uniform_time_positions(t, frames, x_slow.device))
        if size != (h, w):
            n, c, tt = x_slow.shape[:3]
            flat = x_slow.transpose(1, 2).reshape(n * tt, c, h, w)
            if torch.onnx.is_in_onnx_export():
                flat = self._resize_as_matmuls(flat, (h, w), size)
            else:
                if not self.training:  # not on the training step's path
                    self._remember_resize((h, w), size, flat)
                flat = F.interpolate(flat, size=size, mode='bilinear', align_corners=False,
                                     antialias=True)
            x_slow = flat.reshape(n, tt, c, *size).transpose(1, 2)
        return x_slow

    # Antialiased bilinear resizing has no ONNX (opset 17) operator. It is
    # separable and linear, so for the fixed sizes of an exported subnet it is
    # two matrix products, out = M_h @ x @ M_w^T; the matrices are computed in
    # eager eval-mode forwards (the export runs the model once before tracing)
    # and enter the ONNX graph as constants.
    def _remember_resize(self, src, dst, like: torch.Tensor) -> None:
        key = (tuple(src), tuple(dst))
        cache = self.__dict__.setdefault('_resize_matrices', {})
        if key in cache or torch.jit.is_tracing():
            return
        # one basis image per channel, 2 px along the other axis (a 1-px axis
        # takes another code path in torch's antialiased kernel)
        eye = torch.eye(src[0], device=like.device).reshape(1, src[0], src[0], 1)
        rows = F.interpolate(eye.expand(1, src[0], src[0], 2), size=(dst[0], 2),
                             mode='bilinear', align_corners=False, antialias=True)
        eye = torch.eye(src[1], device=like.device).reshape(1, src[1], 1, src[1])
        cols = F.interpolate(eye.expand(1, src[1], 2, src[1]), size=(2, dst[1]),
                             mode='bilinear', align_corners=False, antialias=True)
        cache[key] = (rows[0, :, :, 0].t().contiguous(),  # (out, in) each
                      cols[0, :, 0, :].t().contiguous())

    def _resize_as_matmuls(self, flat: torch.Tensor, src, size) -> torch.Tensor:
        key = (tuple(src), tuple(size))
        mats = self.__dict__.get('_resize_matrices', {}).get(key)
        if mats is None:
            raise RuntimeError(f'SlimResNet3dSlowFast: run the model once on an input of '
                               f'this shape before exporting it (resize {key} unknown)')
        rows, cols = (m.to(flat.dtype) for m in mats)
        return torch.matmul(torch.matmul(rows, flat), cols.t())

    def forward(self, x: torch.Tensor) -> tuple:
        x_slow = F.interpolate(x, mode='nearest',
                               scale_factor=(1.0 / self.resample_rate, 1.0, 1.0))
        x_slow = self._downscale_slow_input(x_slow)
        x_slow = self.slow_path.maxpool(self.slow_path.conv1(x_slow))
        x_fast = F.interpolate(
            x, mode='nearest',
            scale_factor=(1.0 / (self.resample_rate // self.speed_ratio), 1.0, 1.0))
        x_fast = self.fast_path.maxpool(self.fast_path.conv1(x_fast))
        x_slow = self.fusion(x_slow, self.slow_path.conv1_lateral(x_fast))
        for i, layer_name in enumerate(self.slow_path.res_layers):
            x_slow = getattr(self.slow_path, layer_name)(x_slow)
            x_fast = getattr(self.fast_path, layer_name)(x_fast)
            if i != len(self.slow_path.res_layers) - 1:  # no fusion after the last stage
                lateral = getattr(self.slow_path, self.slow_path.lateral_connections[i])
                x_slow = self.fusion(x_slow, lateral(x_fast))
        return (x_slow, x_fast)
