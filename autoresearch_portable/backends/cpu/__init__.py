"""CPU backend: the shared torch backend as it is (peak memory = the process's peak RSS)."""

from autoresearch_portable.backends.torch_common import TorchBackend


class CPUBackend(TorchBackend):
    pass
