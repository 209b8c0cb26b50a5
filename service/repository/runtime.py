"""ONNX Runtime sessions: the only module that imports ``onnxruntime``.

One ``ModelSession`` per model version, shared by every request: ``InferenceSession.run`` is
safe to call from several threads at once, and requests keep their data in locals.
"""

from __future__ import annotations

import ctypes
import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

logger = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

# ONNX Runtime's type strings to the manifest's element types.
ELEMENT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int8)": "int8", "tensor(int16)": "int16", "tensor(int32)": "int32",
    "tensor(int64)": "int64", "tensor(uint8)": "uint8", "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32", "tensor(uint64)": "uint64", "tensor(bool)": "bool",
    "tensor(string)": "string",
}  # fmt: skip


class RuntimeLoadError(Exception):
    """The graph could not be turned into a session (corrupt file, unsupported operator)."""


@dataclass(frozen=True)
class GraphTensor:
    name: str
    dtype: str
    # None for a symbolic or unknown axis.
    shape: tuple[int | None, ...]


def available_providers() -> list[str]:
    return list(ort.get_available_providers())


@functools.cache
def cuda_unavailable_reason() -> str | None:
    """None when the CUDA provider can load here, else why not.

    ``onnxruntime-gpu`` lists CUDA as available even on a machine without CUDA libraries, and a
    session asking for it falls back to CPU with only a log line. Loading the provider library
    ourselves tells the truth once, quietly.
    """
    if CUDA not in available_providers():
        return "this onnxruntime build has no CUDA provider"
    library = Path(ort.__file__).parent / "capi" / "libonnxruntime_providers_cuda.so"
    try:
        ctypes.CDLL(str(library))
    except OSError as exc:
        reason = f"the CUDA provider cannot load: {exc}"
        logger.warning("CUDA is unavailable: %s", reason)
        return reason
    return None


TENSORRT = "TensorrtExecutionProvider"
ProviderRequest = str | tuple[str, dict[str, str]]


@dataclass(frozen=True)
class GpuOptions:
    """Options of the CUDA and TensorRT providers (ignored on CPU)."""

    device_id: int = 0
    # 0: no limit on the CUDA memory arena.
    memory_limit_bytes: int = 0
    cudnn_conv_algo_search: str = "EXHAUSTIVE"
    tensorrt: bool = False
    tensorrt_fp16: bool = True
    tensorrt_cache_dir: str = ".trt-cache"
    io_binding: bool = True


def requested_providers(setting: str, gpu: GpuOptions | None = None) -> list[ProviderRequest]:
    """The providers a session asks for, with their options. ``auto`` asks for CUDA first (and
    TensorRT before it when opted in) when the CUDA provider can load, else CPU."""
    gpu = gpu or GpuOptions()
    if setting.strip().lower() == "auto":
        if cuda_unavailable_reason() is not None:
            return [CPU]
        names = [TENSORRT, CUDA, CPU] if gpu.tensorrt else [CUDA, CPU]
    else:
        names = [name.strip() for name in setting.split(",") if name.strip()]
        unknown = [name for name in names if name not in ort.get_all_providers()]
        if unknown or not names:
            raise ValueError(f"unknown execution providers: {unknown or setting!r}")
    return [_with_options(name, gpu) for name in names]


def _with_options(name: str, gpu: GpuOptions) -> ProviderRequest:
    if name == CUDA:
        options = {
            "device_id": str(gpu.device_id),
            "cudnn_conv_algo_search": gpu.cudnn_conv_algo_search,
            "arena_extend_strategy": "kSameAsRequested",
        }
        if gpu.memory_limit_bytes:
            options["gpu_mem_limit"] = str(gpu.memory_limit_bytes)
        return (name, options)
    if name == TENSORRT:
        return (
            name,
            {
                "device_id": str(gpu.device_id),
                "trt_fp16_enable": str(gpu.tensorrt_fp16),
                "trt_engine_cache_enable": "True",
                "trt_engine_cache_path": gpu.tensorrt_cache_dir,
            },
        )
    return name


class ModelSession:
    """An ``InferenceSession`` with its real providers and graph signature."""

    def __init__(
        self,
        path: Path,
        providers: list[ProviderRequest],
        intra_op_threads: int,
        inter_op_threads: int,
        cpu_memory_arena: bool = False,
    ) -> None:
        options = ort.SessionOptions()
        options.enable_cpu_mem_arena = cpu_memory_arena
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: provider fallbacks are reported by us
        try:
            self._session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/NoSuchFile types
            raise RuntimeLoadError(f"{type(exc).__name__}: {exc}") from None
        self.providers: list[str] = list(self._session.get_providers())
        self.inputs = [_graph_tensor(arg) for arg in self._session.get_inputs()]
        self.outputs = [_graph_tensor(arg) for arg in self._session.get_outputs()]
        # IO binding: inputs are copied to the session's device once, up front, and outputs
        # are bound to host memory, where post-processing reads them. Worth it on CUDA only.
        self.use_io_binding = False
        self.device_id = 0

    @property
    def uses_cuda(self) -> bool:
        return CUDA in self.providers

    def run(self, feeds: dict[str, np.ndarray], output_names: list[str]) -> list[np.ndarray]:
        if self.use_io_binding:
            return self._run_bound(feeds, output_names)
        return list(self._session.run(output_names, feeds))

    def _run_bound(self, feeds: dict[str, np.ndarray], output_names: list[str]) -> list[np.ndarray]:
        device = "cuda" if self.uses_cuda else "cpu"
        binding = self._session.io_binding()
        for name, array in feeds.items():
            value = ort.OrtValue.ortvalue_from_numpy(array, device, self.device_id)
            binding.bind_ortvalue_input(name, value)
        for name in output_names:
            binding.bind_output(name, "cpu")
        self._session.run_with_iobinding(binding)
        return list(binding.copy_outputs_to_cpu())


def _graph_tensor(arg: ort.NodeArg) -> GraphTensor:
    shape = tuple(dim if isinstance(dim, int) else None for dim in (arg.shape or []))
    return GraphTensor(arg.name, ELEMENT_TYPES.get(arg.type, arg.type), shape)
