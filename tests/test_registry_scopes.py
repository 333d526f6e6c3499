"""mutual_mm components resolve by plain name under the mmdet and mmaction scopes."""
import pytest
from mmengine.registry import DefaultScope, init_default_scope
from torch import nn

import mutual_mm  # noqa: F401
from mutual_mm import registry


class _ScopeProbe(nn.Module):
    """Registered by this test only, the way mutual_mm registers its models."""

    def __init__(self, channels=3):
        super().__init__()
        self.conv = nn.Conv2d(channels, 4, 1)


@pytest.fixture(scope='module', autouse=True)
def _probe_registered():
    registry.MODELS.register_module(module=_ScopeProbe, force=True)
    yield
    registry.MODELS.module_dict.pop('_ScopeProbe')


@pytest.mark.parametrize('scope', ['mmdet', 'mmaction'])
def test_plain_name_builds_from_host_scope(scope):
    init_default_scope(scope)
    assert DefaultScope.get_current_instance().scope_name == scope
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmaction.registry import MODELS
    model = MODELS.build(dict(type='_ScopeProbe', channels=5))
    assert isinstance(model, _ScopeProbe)
    assert model.conv.in_channels == 5


@pytest.mark.parametrize('scope, resize_module', [
    ('mmdet', 'mmdet.datasets.transforms'),
    ('mmaction', 'mmaction.datasets.transforms'),
])
def test_root_registry_builds_nested_types_in_the_host_scope(scope, resize_module):
    """A mutual_mm wrapper that builds a nested `Resize` through the root registry
    gets the host library's own Resize."""
    import mmaction.datasets  # noqa: F401  (registers mmaction transforms)
    import mmdet.datasets  # noqa: F401
    init_default_scope(scope)
    resize = registry.TRANSFORMS.build(dict(type='Resize', scale=(32, 32)))
    assert type(resize).__module__.startswith(resize_module)
