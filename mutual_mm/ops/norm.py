"""Slimmable batch normalization."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import SlimMixin, copy_param, share_tensors


def _prefix(t, c: int):
    return None if t is None else t[:c]


class _SlimBatchNorm(SlimMixin):
    """Logic shared by :class:`SlimBatchNorm2d` and :class:`SlimBatchNorm3d`."""

    _dense_cls: type = None

    def active_out_channels(self, in_channels: int) -> int:
        return int(in_channels)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        c = int(input.shape[1])
        if c == self.num_features:
            return super().forward(input)  # fast path: the dense forward
        self._check_in_channels(c, self.num_features)
        self._check_input_dim(input)

        # Below: torch.nn.modules.batchnorm._BatchNorm.forward, with every
        # per-channel tensor replaced by its prefix view [:c].  The running
        # stats views share storage with the full buffers, so F.batch_norm's
        # in-place update writes into the first c entries of the full
        # buffers and leaves the others untouched.
        if self.momentum is None:
            exponential_average_factor = 0.0
        else:
            exponential_average_factor = self.momentum

        if self.training and self.track_running_stats:
            if self.num_batches_tracked is not None:
                self.num_batches_tracked.add_(1)
                if self.momentum is None:  # cumulative moving average
                    exponential_average_factor = 1.0 / float(self.num_batches_tracked)
                else:  # exponential moving average
                    exponential_average_factor = self.momentum

        if self.training:
            bn_training = True
        else:
            bn_training = (self.running_mean is None) and (self.running_var is None)

        use_buffers = not self.training or self.track_running_stats
        return F.batch_norm(
            input,
            _prefix(self.running_mean, c) if use_buffers else None,
            _prefix(self.running_var, c) if use_buffers else None,
            _prefix(self.weight, c),
            _prefix(self.bias, c),
            bn_training,
            exponential_average_factor,
            self.eps,
        )

    @classmethod
    def from_dense(cls, module: nn.Module, **slim_kwargs):
        """Slim version of the dense BN ``module`` sharing its parameter and
        buffer objects.  Accepts ``divisor`` only (BN output channels always
        follow the input)."""
        if not isinstance(module, cls._dense_cls):
            raise TypeError(f'{cls.__name__}.from_dense expects an '
                            f'{cls._dense_cls.__name__}, got {type(module).__name__}')
        kwargs = {}
        if module.affine and module.bias is None:
            kwargs['bias'] = False  # only passed when needed (torch >= 2.5 arg)
        dtype = module.weight.dtype if module.weight is not None else (
            module.running_mean.dtype if module.running_mean is not None else None)
        new = cls(module.num_features, eps=module.eps, momentum=module.momentum,
                  affine=module.affine, track_running_stats=module.track_running_stats,
                  device='meta', dtype=dtype, **kwargs, **slim_kwargs)
        share_tensors(new, module)
        return new

    def to_static(self, in_channels: int) -> nn.Module:
        """Plain ``nn.BatchNorm2d``/``nn.BatchNorm3d`` with ``in_channels``
        features: sliced affine parameters and running stats, the same
        ``num_batches_tracked``, eps, momentum, flags, train/eval mode and
        requires_grad (all copied)."""
        c = int(in_channels)
        self._check_in_channels(c, self.num_features)
        kwargs = {}
        if self.affine and self.bias is None:
            kwargs['bias'] = False
        ref = self.weight if self.weight is not None else self.running_mean
        factory = {} if ref is None else {'device': ref.device, 'dtype': ref.dtype}
        static = self._dense_cls(c, eps=self.eps, momentum=self.momentum,
                                 affine=self.affine,
                                 track_running_stats=self.track_running_stats,
                                 **factory, **kwargs)
        for name in ('weight', 'bias'):
            p = getattr(self, name)
            if p is not None:
                setattr(static, name, copy_param(p[:c], p.requires_grad))
        for name in ('running_mean', 'running_var'):
            b = getattr(self, name)
            if b is not None:
                setattr(static, name, b[:c].detach().clone().contiguous())
        if self.num_batches_tracked is not None:
            static.num_batches_tracked = self.num_batches_tracked.detach().clone()
        return static.train(self.training)


_BN_DOC = """Slimmable ``nn.{dense}``.

    Takes exactly the arguments of ``nn.{dense}`` (``num_features, eps=1e-5,
    momentum=0.1, affine=True, track_running_stats=True, device=None,
    dtype=None``) plus keyword-only ``divisor`` (unused by the layer itself,
    kept for a uniform interface).  The number of normalized channels
    follows ``x.shape[1]``: weight, bias, running_mean and running_var are
    used through prefix views ``[:c]``, so running-stat updates at a reduced
    width write into the first ``c`` entries of the full buffers.
    ``num_batches_tracked`` is shared by all widths.  ``width`` and
    ``slim_out`` (always False) exist for the common interface only.
    """


class SlimBatchNorm2d(_SlimBatchNorm, nn.BatchNorm2d):
    __doc__ = _BN_DOC.format(dense='BatchNorm2d')
    _dense_cls = nn.BatchNorm2d

    def __init__(self, *args, divisor: int = 8, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_slim(slim_out=False, divisor=divisor)


class SlimBatchNorm3d(_SlimBatchNorm, nn.BatchNorm3d):
    __doc__ = _BN_DOC.format(dense='BatchNorm3d')
    _dense_cls = nn.BatchNorm3d

    def __init__(self, *args, divisor: int = 8, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_slim(slim_out=False, divisor=divisor)
