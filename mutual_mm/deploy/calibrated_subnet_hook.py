"""CalibratedSubnetHook: validate/test a MutualNet checkpoint at one subnet."""
import os.path as osp
from typing import Optional

from mmengine.hooks import Hook

from ..engine.trained_space import TrainedSpace, check_trained
from ..fileio import check_readable_checkpoint
from ..registry import HOOKS
from .apply_subnet import apply_subnet
from .bn_calibration import apply_bn_stats
from .subnet import Subnet

CALIBRATION_KEY = 'bn_calibration'
#: the top-level config key naming the subnet to test, e.g. on the command line
#: ``--cfg-options subnet.width=0.6 subnet.scale=160``
SUBNET_CFG_KEY = 'subnet'


def apply_calibrated_stats(model, calibration: Optional[dict], subnet: Subnet,
                           source: str = 'the checkpoint') -> None:
    """Write the BN statistics calibrated for ``subnet`` (``calibration``: a
    checkpoint's ``bn_calibration``) into ``model``; the full network at the
    pipeline's own size keeps the statistics it was trained with. A subnet
    without statistics fails with the list of calibrated ones. Test-time
    knobs (proposals) share their network's statistics."""
    network = subnet.network
    calibrated = (calibration or {}).get(network.key)
    if calibrated is not None:
        apply_bn_stats(model, calibrated['stats'])
    elif network != Subnet(1.0):
        raise KeyError(
            f'no calibrated BN statistics for subnet {network.key} in {source}; '
            f'calibrated: {sorted(calibration or {}) or "none"}. Run '
            'tools/calibrate_bn.py for it first')


@HOOKS.register_module()
class CalibratedSubnetHook(Hook):
    """Run validation/testing at one subnet (width, scale[, frames][, proposals]) with the BN
    statistics calibrated for it by ``tools/calibrate_bn.py``.

    The subnet is the config's top-level ``subnet = dict(width=..., scale=...,
    frames=...)`` (so the command line names it: ``--cfg-options
    subnet.width=0.6``), unless the hook's own arguments give it; neither: the
    full network. Before the val/test loop the model's width is set, the
    val/test pipeline's last ``Resize`` gets ``scale`` (and ``SampleFrames`` the
    frame count) or, for a backbone that makes its own input views (SlowFast),
    the backbone gets them (short side and frames of the Slow input; the clip,
    thus the Fast pathway, stays whole), and the statistics stored for this
    subnet in the loaded checkpoint are written into the BN layers. A subnet the
    checkpoint has no statistics for fails with the list of calibrated ones
    (width 1.0 at the pipeline's own size, the trained full network, needs none).

    Args:
        width (float, optional): backbone width. Defaults to the config's
            ``subnet.width``, else 1.0.
        scale (int | tuple, optional): input size, as ``MultiResolution`` takes
            it (SlowFast: the Slow input's short side). Defaults to the config's
            ``subnet.scale``, else the pipeline's own.
        frames (int, optional): frames per clip (video; SlowFast: Slow frames;
            TSN: segments). Defaults to the config's ``subnet.frames``, else the
            pipeline's own.
        proposals (int, optional): RPN proposals kept per image (two-stage
            detectors). Defaults to the config's ``subnet.proposals``, else the
            model's own ``test_cfg.rpn.max_per_img``.
        allow_untrained (bool): run a subnet outside what the checkpoint was
            trained on (its ``meta['mutual_learning']``), with a warning, instead
            of refusing it. Defaults to False.
    """

    priority = 'HIGH'

    def __init__(self, width: Optional[float] = None, scale=None,
                 frames: Optional[int] = None, proposals: Optional[int] = None,
                 allow_untrained: bool = False):
        self._given = dict(width=width, scale=scale, frames=frames, proposals=proposals)
        self.subnet = None
        self.allow_untrained = allow_untrained
        self.calibration = None
        self.trained = None

    def before_run(self, runner) -> None:
        # runs before the Runner loads ``load_from``: an empty or truncated file
        # is named here instead of failing in torch.load with a bare EOFError
        load_from = runner.cfg.get('load_from')
        if isinstance(load_from, str) and osp.exists(load_from):
            check_readable_checkpoint(load_from)
        if self.subnet is not None:  # set by a caller (the lookup table)
            return
        given_all = None not in self._given.values()  # then the config is not read
        from_cfg = {} if given_all else dict(runner.cfg.get(SUBNET_CFG_KEY) or {})
        unknown = sorted(set(from_cfg) - set(self._given))
        if unknown:
            raise KeyError(f'{SUBNET_CFG_KEY}: unknown keys {unknown}; valid: width, '
                           'scale, frames, proposals')
        merged = {k: v if v is not None else from_cfg.get(k)
                  for k, v in self._given.items()}
        if merged['width'] is None:
            merged['width'] = 1.0
        self.subnet = Subnet(**merged)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self.calibration = checkpoint.get(CALIBRATION_KEY)
        self.trained = TrainedSpace.from_checkpoint(checkpoint)

    def _apply(self, runner, dataloader) -> None:
        if self.subnet is None:
            self.before_run(runner)
        subnet = self.subnet
        check_trained([subnet], self.trained, self.allow_untrained)
        apply_subnet(runner.model, dataloader.dataset, subnet)
        apply_calibrated_stats(runner.model, self.calibration, subnet)

    def before_val(self, runner) -> None:
        self._apply(runner, runner.val_dataloader)

    def before_test(self, runner) -> None:
        self._apply(runner, runner.test_dataloader)
