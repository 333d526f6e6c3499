"""CalibratedConfigHook: validate/test a MutualNet checkpoint at one configuration."""
from typing import Optional

from mmengine.hooks import Hook

from ..engine.trained_space import TrainedSpace, check_trained
from ..registry import HOOKS
from .bn_calibration import apply_bn_stats
from .configuration import SubnetConfig
from .pipeline_config import apply_config

CALIBRATION_KEY = 'bn_calibration'


@HOOKS.register_module()
class CalibratedConfigHook(Hook):
    """Run validation/testing at one (width, scale[, frames]) configuration with
    the BN statistics calibrated for it by ``tools/calibrate_bn.py``.

    Before the val/test loop: the model's width is set, the val/test pipeline's
    last ``Resize`` gets ``scale`` (and ``SampleFrames`` the frame count) or, for
    a SlowFast backbone, its Slow pathway gets them (short side and frames of the
    Slow input; the clip, thus the Fast pathway, stays whole), and the
    statistics stored for this configuration in the loaded checkpoint are written
    into the BN layers. A configuration the checkpoint has no statistics for fails
    with the list of calibrated ones (width 1.0 at the pipeline's own size, the
    trained full network, needs none).

    Args:
        width (float): backbone width. Defaults to 1.0.
        scale (int | tuple, optional): input size, as ``MultiResolution`` takes
            it (SlowFast: the Slow input's short side). Defaults to None (the
            pipeline's own; SlowFast: the whole Slow input).
        frames (int, optional): frames per clip (video; SlowFast: Slow frames).
            Defaults to None.
        allow_untrained (bool): run a configuration outside what the checkpoint
            was trained on (its ``meta['mutual_learning']``), with a warning,
            instead of refusing it. Defaults to False.
    """

    priority = 'HIGH'

    def __init__(self, width: float = 1.0, scale=None, frames: Optional[int] = None,
                 allow_untrained: bool = False):
        self.config = SubnetConfig(width, scale, frames)
        self.allow_untrained = allow_untrained
        self.calibration = None
        self.trained = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self.calibration = checkpoint.get(CALIBRATION_KEY)
        self.trained = TrainedSpace.from_checkpoint(checkpoint)

    def _apply(self, runner, dataloader) -> None:
        config = self.config
        check_trained([config], self.trained, self.allow_untrained)
        apply_config(runner.model, dataloader.dataset, config)
        calibrated = (self.calibration or {}).get(config.key)
        if calibrated is None and config == SubnetConfig(1.0):
            return  # the full network keeps the statistics it was trained with
        if calibrated is None:
            known = sorted(self.calibration or {})
            raise KeyError(
                f'no calibrated BN statistics for configuration {config.key} in the '
                f'checkpoint; calibrated: {known or "none"}. Run tools/calibrate_bn.py '
                'for it first')
        apply_bn_stats(runner.model, calibrated['stats'])

    def before_val(self, runner) -> None:
        self._apply(runner, runner.val_dataloader)

    def before_test(self, runner) -> None:
        self._apply(runner, runner.test_dataloader)
