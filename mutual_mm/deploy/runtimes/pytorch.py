"""PyTorch: the subnet's model as it is, on its device."""
import contextlib
from typing import Dict

import torch

from ...models.slimming import unwrap_model
from ..complexity import measure_latency_ms, median_ms
from .base import RUNTIMES, Runtime, SubnetModel


@contextlib.contextmanager
def torch_threads(threads: int):
    """PyTorch's intra-op threads set to ``threads`` inside the block."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@RUNTIMES.register_module(name='torch')
class TorchRuntime(Runtime):
    """The model in PyTorch on its device: nothing is exported; latency is the
    family's deployed forward (post-processing included); evaluation is
    mmengine's test loop (``test_step``, then the config's evaluator)."""
    name = 'torch'

    def default_threads(self) -> int:
        """PyTorch's current intra-op threads."""
        return torch.get_num_threads()

    def export(self, target: SubnetModel, path=None):
        return unwrap_model(target.model)

    def latency_ms(self, artifact, target: SubnetModel) -> float:
        with torch_threads(self.threads):
            return measure_latency_ms(artifact, target.batch, self.repeats, self.warmup)

    @torch.no_grad()
    def evaluate(self, artifact, target: SubnetModel) -> Dict[str, float]:
        loader, evaluator = target.test_loader(), target.evaluator()
        evaluator.dataset_meta = loader.dataset.metainfo
        artifact.eval()
        with torch_threads(self.threads):
            for batch in loader:
                evaluator.process(data_samples=artifact.test_step(batch), data_batch=batch)
        return evaluator.evaluate(len(loader.dataset))

    @torch.no_grad()
    def module_latency_ms(self, module, inputs, path=None) -> float:
        module.eval()
        sync = torch.cuda.synchronize if inputs.is_cuda else None
        with torch_threads(self.threads):
            return median_ms(lambda: module(inputs), self.repeats, self.warmup, sync)
