"""Deployment: BN calibration per configuration, testing at a configuration."""
from .bn_calibration import apply_bn_stats, batch_norms, calibrate_bn, calibration_mode
from .calibrated_config_hook import CALIBRATION_KEY, CalibratedConfigHook
from .calibrate_checkpoint import calibrate_checkpoint, calibrate_configs, trained_configs
from .build_table import build_lookup_table
from .complexity import measure_complexity, measure_latency_ms
from .configuration import SubnetConfig
from .lookup_table import (TableRow, load_table, pareto_frontier, plot_table,
                           save_table, select_config)
from .pipeline_config import apply_config, set_pipeline_config

__all__ = [
    'apply_bn_stats', 'batch_norms', 'calibrate_bn', 'calibration_mode',
    'CALIBRATION_KEY', 'CalibratedConfigHook', 'SubnetConfig', 'set_pipeline_config',
    'apply_config',
    'calibrate_checkpoint', 'calibrate_configs', 'trained_configs',
    'build_lookup_table', 'measure_complexity', 'measure_latency_ms', 'TableRow',
    'load_table', 'pareto_frontier', 'plot_table', 'save_table', 'select_config'
]
