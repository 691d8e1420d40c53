"""Typed errors. Every message names the file / tensor / layer / limit involved,
the expected and the actual value, and says what to do."""


class PostFXError(Exception):
    """Base of every error postfx raises on purpose."""


# --- model files -----------------------------------------------------------

class ModelFileError(PostFXError, ValueError):
    """A model file (or bundled-style name) that cannot be used."""


class NotAModelFile(ModelFileError):
    """The bytes are not a safetensors model file (pickle, zip, LFS pointer, empty ...)."""


class ModelFormatError(ModelFileError):
    """The safetensors container or its JSON metadata is malformed."""


class UnsupportedFormatVersion(ModelFileError):
    """The file was written by a newer (or unknown) exporter format."""


class ChecksumMismatch(ModelFileError):
    """Tensor data does not match the checksum stored at export time."""


class ModelGraphError(ModelFileError):
    """A layer description is invalid (unknown op, bad kernel/stride/channels, dangling input)."""


class TensorError(ModelFileError):
    """A tensor is missing, unexpected, wrongly shaped or holds non-finite values."""


class StyleNotFound(ModelFileError, LookupError):
    """No bundled style of that name."""


# --- export ------------------------------------------------------------------

class ExportError(PostFXError):
    """A torch module could not be exported; nothing was written."""


class UnsupportedLayer(ExportError):
    """The module uses a layer or function postfx does not implement."""


class ExportVerificationError(ExportError):
    """The exported file, run by the reference runtime, does not reproduce the module."""


# --- GL ------------------------------------------------------------------

class GLError(PostFXError, RuntimeError):
    """Something on the GL side failed."""


class GLVersionError(GLError):
    """The context is below OpenGL 4.3 (no compute shaders)."""


class ShaderCompileError(GLError):
    """A compute shader failed to compile or link."""


class DeviceLimitError(GLError):
    """A dispatch or allocation would exceed a device limit."""


class ContextLost(GLError):
    """The GL context was released or lost; rebuild the pass in a live context."""


class PassReleased(PostFXError, RuntimeError):
    """The pass was used after release()."""


# --- frames and inputs -----------------------------------------------------

class InputError(PostFXError, ValueError):
    """An array, texture or parameter passed in has the wrong type, shape or value."""


class FrameTooSmall(InputError):
    """A frame below the minimum size (e.g. a minimized 0x0 window)."""


class FrameTooLarge(InputError):
    """A frame beyond GL_MAX_TEXTURE_SIZE or the memory budget."""


# --- training ----------------------------------------------------------------

class TrainingDataError(InputError):
    """Training or validation data failed the pre-flight check; `problems` lists every bad
    file or folder (one line each)."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = list(problems or [])


class TrainingError(PostFXError, RuntimeError):
    """Training stopped; the run directory's last checkpoint is intact."""


class NonFiniteLoss(TrainingError):
    """Too many consecutive steps had a NaN / Inf loss. `step` is the step that aborted,
    `checkpoint` the last checkpoint written after a finite step (None if there is none)."""

    def __init__(self, message: str, step: int, checkpoint: str | None):
        super().__init__(message)
        self.step, self.checkpoint = step, checkpoint


class CheckpointError(TrainingError):
    """A checkpoint is missing, unreadable, or belongs to a different run configuration."""


# --- model files and writing files (added later, so kept at the end) ------------------

class UnsupportedNormSemantics(ModelFormatError):
    """The file declares normalization semantics the runtime does not implement (only
    eval-mode BatchNorm folded into the convs is; reliability B6)."""


class NormSemanticsMismatch(ModelFormatError, ExportError):
    """The file's layers and its declared normalization semantics disagree (a BatchNorm kept
    as a per-frame norm in a file that says "eval", or folded BatchNorms in a "frame"
    file), or an exporter was asked for semantics the network cannot have (reliability B6)."""


class FileWriteError(PostFXError, OSError):
    """A model file, checkpoint or other output could not be written (disk full, size limit,
    permissions); the previous file at that path, if any, is unchanged (reliability D1)."""


# --- GL resources (added later, so kept at the end) ---------------------------------

class AllocationFailed(GLError):
    """GL could not create a buffer, texture, sampler or framebuffer (out of memory, a
    size the driver refuses). Everything the failed build or resize had made is released;
    the message names what was being allocated and its size (reliability C7)."""


class SoftwareRenderer(GLError):
    """require_gpu=True, but the context runs on a CPU renderer (Mesa llvmpipe, ...)."""


class KernelCacheWarning(UserWarning):
    """The kernel-choice cache file was unreadable, corrupt or foreign: it was ignored
    (nothing in it trusted) and will be rewritten."""


class SoftwareRendererWarning(UserWarning):
    """A headless context landed on a CPU renderer although a hardware device is listed."""


class MissingDepthWarning(UserWarning):
    """An RGBD model was run without depth: it sees the far plane everywhere. Python shows a
    warning once per place it comes from, so a loop over pictures warns once."""
