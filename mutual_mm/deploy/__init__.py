"""Deployment: BN calibration per subnet, testing at a subnet, the lookup
table, static export (and, in :mod:`.onnx_export`, ONNX), the runtimes a
subnet is deployed to (:mod:`.runtimes`, registered plug-ins)."""
from .bn_calibration import apply_bn_stats, batch_norms, calibrate_bn, calibration_mode
from .calibrated_subnet_hook import CALIBRATION_KEY, SUBNET_CFG_KEY, CalibratedSubnetHook
from .calibrate_checkpoint import (calibrate_checkpoint, calibrate_subnets, read_trained_space,
                                   trained_subnets)
from .build_table import build_lookup_table
from .complexity import measure_complexity, measure_costs, measure_latency_ms
# registers MutualStaticSubnet, which an exported subnet's config builds: it must
# resolve wherever `mutual_mm` is imported (custom_imports of that config)
from .export import MutualStaticSubnet, export_subnet, export_subnet_files
from .subnet import Subnet
from .lookup_table import (TableRow, load_table, pareto_frontier, plot_table,
                           save_table, select_subnet)
from .apply_subnet import apply_subnet, apply_subnet_to_cfg
from .runtimes import RUNTIMES, Runtime, SubnetModel, build_runtime, runtime_names
from .deploy_subnet import deploy_subnet

__all__ = [
    'apply_bn_stats', 'batch_norms', 'calibrate_bn', 'calibration_mode',
    'CALIBRATION_KEY', 'SUBNET_CFG_KEY', 'CalibratedSubnetHook', 'Subnet',
    'apply_subnet', 'apply_subnet_to_cfg',
    'calibrate_checkpoint', 'calibrate_subnets', 'read_trained_space', 'trained_subnets',
    'build_lookup_table', 'measure_complexity', 'measure_costs', 'measure_latency_ms',
    'MutualStaticSubnet', 'export_subnet', 'export_subnet_files', 'TableRow',
    'load_table', 'pareto_frontier', 'plot_table', 'save_table', 'select_subnet',
    'RUNTIMES', 'Runtime', 'SubnetModel', 'build_runtime', 'runtime_names', 'deploy_subnet'
]
