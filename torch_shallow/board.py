"""TensorBoard output, in each run's directory (see :mod:`torch_shallow.run`): scalars, hyperparameters,
histograms, the decision boundary of 2-D data with its colour key, a layout that overlays training and validation
curves, and the model's graph; written by the callbacks :class:`TensorBoard` and :class:`Dashboard`.

Imported only by runs that log, so that ``import torch_shallow`` does not load TensorBoard, protobuf or Pillow."""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import itertools
import math
import os
import socket
import struct
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn, cast

import google_crc32c
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams.metadata import (
    PLUGIN_DATA_VERSION,
    PLUGIN_NAME,
    SESSION_END_INFO_TAG,
    SESSION_START_INFO_TAG,
)
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionEndInfo, SessionStartInfo
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import custom_scalars

from .callbacks import Callback, Run
from .evaluation import labels_per_row
from .functional import ShallowNetFunction, auto_block_rows
from .stopping import diverging

if TYPE_CHECKING:
    from .module import ShallowNet

HParamValue = int | float | str | bool


def write_hparams(writer: RunWriter, hparams: dict[str, object]) -> None:
    """Record a run's hyperparameters in the writer's own run directory, for the HParams dashboard.

    ``SummaryWriter.add_hparams`` writes them into a new sub-run named by a timestamp, which splits one run in two
    on the dashboard; the session's start and end summaries go through the run's own file writer instead. The
    metrics the dashboard shows for a run are the last values of its scalar tags: each curve ends with the trained
    model's value at step ``epochs`` (``cost/train``, ``accuracy/train``, ``cost/val``, ``accuracy/val``), so no
    separate one-point charts of final metrics are written.
    """
    clean = {k: v if isinstance(v, HParamValue) else str(v) for k, v in hparams.items()}
    # No experiment summary, the first of the three: TensorBoard's HParams plugin (backend_context.py,
    # experiment_from_metadata) takes the columns of the whole log directory from the first run it finds holding
    # one, so a run without validation data would hide cost/val and accuracy/val of every other run, and a run with
    # other hyperparameters their columns. Without any, the plugin builds the columns from every run's session
    # start (each hyperparameter, its values' domain) and every scalar tag of those runs, whatever mix shares the
    # directory. Its table then shows the first five metrics in the order of their tags: accuracy/train,
    # accuracy/val, cost/train, cost/val and grad_norm.
    # The two written are what torch's hparams() makes, built here without the experiment, which would cost a
    # stack of hundreds of models as much again. Booleans are numbers, as torch records them.
    start = SessionStartInfo()
    for name, value in clean.items():
        if isinstance(value, (int, float)):
            start.hparams[name].number_value = value
        else:
            start.hparams[name].string_value = value
    writer.add_summary(_hparams_summary(SESSION_START_INFO_TAG, HParamsPluginData(session_start_info=start)))
    writer.add_summary(SESSION_END)


def _hparams_summary(tag: str, data: HParamsPluginData) -> Summary:
    """A summary of the HParams plugin's ``data`` under ``tag``, as TensorBoard's plugin reads it."""
    data.version = PLUGIN_DATA_VERSION
    plugin = SummaryMetadata.PluginData(plugin_name=PLUGIN_NAME, content=data.SerializeToString())
    return Summary(value=[Summary.Value(tag=tag, metadata=SummaryMetadata(plugin_data=plugin))])


# The end of a session, the same for every run: it succeeded (a stopped run's summary is not written).
SESSION_END = _hparams_summary(
    SESSION_END_INFO_TAG, HParamsPluginData(session_end_info=SessionEndInfo(status=api_pb2.STATUS_SUCCESS))
)


# Colours of the decision-boundary image (RGB in [0, 1]): the probability field fades from the light colour of
# class 0 to that of class 1; the points are drawn in the dark colour of their label; the key's text in INK.
LIGHT = torch.tensor([[0.60, 0.75, 0.95], [0.97, 0.65, 0.55]])
DARK = torch.tensor([[0.05, 0.20, 0.60], [0.65, 0.05, 0.05]])
INK = torch.tensor([0.10, 0.10, 0.10])

# The colour key beneath the field: two lines of Pillow's default font (about 10 pixels high), each led by a
# SWATCH-pixel square or bar, PAD pixels from the edges.
KEY_ROWS, SWATCH, PAD = 40, 8, 6


@torch.no_grad()
def decision_boundary_image(model: ShallowNet, X: Tensor, Y: Tensor, size: int = 256) -> Tensor:
    """A (3, size + KEY_ROWS, size) float image in [0, 1]: the points of 2-D data over the field A2 = P(y = 1 | x),
    in the top size × size square, and beneath it a key to the colours (:func:`colour_key`).

    The field is evaluated on a size × size grid over the data's range with a 10% margin, block by block as the
    cost is, so that a wide hidden layer does not need (size², d1) activations at once; the point of each sample
    is a 3 × 3 pixel square in its label's colour. The image's top row is the largest second coordinate.
    """
    X, Y = X.detach().cpu().double(), Y.detach().cpu().reshape(-1)
    low, high = X.min(0).values, X.max(0).values
    margin = 0.1 * (high - low).clamp_min(1e-12)
    low, high = low - margin, high + margin
    u = torch.linspace(low[0], high[0], size, dtype=torch.float64)
    v = torch.linspace(high[1], low[1], size, dtype=torch.float64)
    factory: dict[str, Any] = {"device": model.W1.device, "dtype": model.W1.dtype}
    pixels = torch.meshgrid(u.to(**factory), v.to(**factory), indexing="xy")  # (size, size) each, x1 along rows
    grid = torch.stack(pixels, dim=-1).reshape(-1, 2)  # row-major over the image: (x1, x2) of each pixel
    block_rows = auto_block_rows(model.W1)
    p = torch.cat([model.predict_proba(grid[a : a + block_rows])[:, 0] for a in range(0, len(grid), block_rows)])
    image = field_colours(p.float().cpu().reshape(size, size))  # (size, size, 3)
    col = ((X[:, 0] - low[0]) / (high[0] - low[0]) * (size - 1)).round().long()
    row = ((high[1] - X[:, 1]) / (high[1] - low[1]) * (size - 1)).round().long()
    colour = DARK[(Y > 0.5).long()]
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            image[(row + dr).clamp(0, size - 1), (col + dc).clamp(0, size - 1)] = colour
    return torch.cat([image, colour_key(size)]).permute(2, 0, 1)


def field_colours(p: Tensor) -> Tensor:
    """The colours (..., 3) of probabilities p (...): (1 - p) LIGHT[0] + p LIGHT[1], from class 0's light colour at
    0 to class 1's at 1."""
    return torch.lerp(LIGHT[0].to(p), LIGHT[1].to(p), p.unsqueeze(-1))


@functools.lru_cache(maxsize=4)  # the same for every image of a run: the text is drawn once
def colour_key(width: int) -> Tensor:
    """The key beneath the field, (KEY_ROWS, width, 3) in float32 on white: a square in each label's point
    colour, named ``y = 0`` and ``y = 1``, and a bar of the field's colours from P(y = 1 | x) = 0 to 1.

    The squares and the bar are drawn as tensors, so their pixels hold exactly the colours of the points and
    the field; Pillow draws the text, whose antialiased coverage then blends INK into the white. Laid out for
    images at least 160 pixels wide (the trainer's are 256); in narrower ones the text is cut off at the edge.
    """
    key = torch.ones(KEY_ROWS, width, 3, dtype=torch.float64)
    text = Image.new("L", (width, KEY_ROWS))
    draw, font = ImageDraw.Draw(text), ImageFont.load_default()
    top = (PAD, KEY_ROWS // 2 + PAD // 2)  # the two lines' first pixel rows
    x = PAD
    for label, colour in enumerate(DARK.double()):
        key[top[0] : top[0] + SWATCH, x : x + SWATCH] = colour
        x = _write(draw, font, x + SWATCH + 4, top[0], f"y = {label}") + 3 * PAD
    start = _write(draw, font, PAD, top[1], "P(y = 1 | x):  0") + 4
    end = max(width - PAD - round(draw.textlength("1", font=font)) - 4, start)
    key[top[1] : top[1] + SWATCH, start:end] = field_colours(torch.linspace(0, 1, end - start))
    _write(draw, font, end + 4, top[1], "1")
    ink = torch.from_numpy(np.array(text)).double().unsqueeze(-1) / 255  # (KEY_ROWS, width, 1) text coverage
    return (key * (1 - ink) + INK.double() * ink).float()


def _write(
    draw: ImageDraw.ImageDraw, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, x: int, top: int, text: str
) -> int:
    """Draw text left-aligned at x, centred on the SWATCH rows from ``top``; returns the column after it."""
    draw.text((x, top + SWATCH / 2), text, fill=255, font=font, anchor="lm")
    return x + round(draw.textlength(text, font=font))


def _masked_crc(data: bytes) -> bytes:
    """TFRecord's masked CRC-32C of ``data``, as 4 little-endian bytes (tensorflow/core/lib/hash/crc32c.h)."""
    crc = google_crc32c.value(data)
    return _UINT32.pack((((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


_UINT32, _UINT64 = struct.Struct("<I"), struct.Struct("<Q")  # little-endian, as TFRecord's lengths and checksums


class SynchronousFileWriter:
    """An event file written in the calling thread, with the methods of ``SummaryWriter``'s file writer: what
    TensorBoard's own writer does, without its thread per file, and with the records' CRC-32C checksums computed by
    ``google_crc32c`` in C (TensorBoard, without TensorFlow, computes them in Python, byte by byte, which costs a
    stack of hundreds of models more than its training). Records go into the file's buffer, which goes to the disk
    when it fills, at ``flush``, and at the first record ``flush_secs`` seconds after the last flush, so that a
    dashboard watching a slow run sees its steps.

    A ``deferred`` writer's directory and file are made later, by :func:`make_files` in a thread of its own, while
    the caller goes on (training, for a stack of hundreds of models, whose files take longer to make than its first
    epochs); the records come after them once the file is open. ``flush``, ``close`` and a record ``flush_secs``
    after the last flush wait for the file, and raise the error that kept it from being made, such as a full disk's.
    """

    _count = itertools.count()

    def __init__(
        self, log_dir: str, filename_suffix: str = "", flush_secs: float = 10.0, deferred: bool = False
    ) -> None:
        self._log_dir, self._flush_secs = log_dir, flush_secs
        name = f"events.out.tfevents.{time.time():010.0f}.{socket.gethostname()}.{os.getpid()}.{next(self._count)}"
        self.path = os.path.join(log_dir, name + filename_suffix)
        self._file = None if deferred else _new_file(self.path)  # set once the records held until then are written
        self._ready: BinaryIO | None = None  # a deferred file, set by the thread that made it: read without a lock
        self._making: Future[None] | None = None  # that thread's work, for its error
        self._failure: OSError | None = None  # its error, set by that thread
        self._held: list[bytes] = []
        self._flushed = time.time()
        self.add_event(Event(file_version="brain.Event:2"))

    def get_logdir(self) -> str:
        return self._log_dir

    def add_event(self, event: Event, step: int | None = None, walltime: float | None = None) -> None:
        event.wall_time = time.time() if walltime is None else walltime
        if step is not None:
            event.step = int(step)
        self.write(event)

    def write(self, event: Event) -> None:
        """``event`` as it is, its wall time and step set, as the next record."""
        data = event.SerializeToString()
        length = _UINT64.pack(len(data))  # a TFRecord: length, its checksum, the data, its checksum
        record = b"".join((length, _masked_crc(length), data, _masked_crc(data)))
        file = self._file
        if file is None:
            if self._ready is None and self._failure is None and event.wall_time - self._flushed < self._flush_secs:
                self._held.append(record)
                return
            file = self._opened()
        try:
            file.write(record)
        except OSError as error:
            _naming(error, self.path)
        if event.wall_time - self._flushed >= self._flush_secs:
            self.flush()

    def add_summary(self, summary: Summary, global_step: int | None = None, walltime: float | None = None) -> None:
        self.add_event(Event(summary=summary), global_step, walltime)

    def make(self) -> None:
        """Make a deferred writer's directory and file."""
        self._ready = _new_file(self.path)

    def _opened(self) -> BinaryIO:
        """The file, once open, with the records held until then written first."""
        if self._file is None:
            if self._ready is None:
                cast("Future[None]", self._making).result()  # waits; raises the error that kept it from being made
            self._file = cast(BinaryIO, self._ready)
            held, self._held = b"".join(self._held), []
            try:
                self._file.write(held)
            except OSError as error:
                _naming(error, self.path)
        return self._file

    def flush(self) -> None:
        try:
            self._opened().flush()
        except OSError as error:
            _naming(error, self.path)
        self._flushed = time.time()

    def close(self) -> None:
        file = self._opened()
        try:
            file.close()  # a second close does nothing
        except OSError as error:
            _naming(error, self.path)


def _naming(error: OSError, path: str) -> NoReturn:
    """Raise ``error``, naming the file it concerns where it does not (a write to a full disk says only "No space
    left on device")."""
    if error.filename is not None:
        raise error
    raise OSError(error.errno, error.strerror, path) from error


def _new_file(path: str) -> BinaryIO:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return open(path, "wb")


def make_files(writers: list[SynchronousFileWriter], executor: Executor) -> None:
    """Make the files of deferred ``writers``, in order, as one task of ``executor``: one task, not one per file,
    for each hand-over between threads costs the caller the GIL."""

    def make() -> None:
        for k, writer in enumerate(writers):
            try:
                writer.make()
            except OSError as error:  # the writers still waiting see it at their next record, not their next flush
                for waiting in writers[k:]:
                    waiting._failure = error
                raise

    making = executor.submit(make)
    for writer in writers:
        writer._making = making


def scalars_event(scalars: dict[str, float], step: int) -> Event:
    """An event of several scalars of one step, as ``add_scalar`` writes each (``simple_value``), at this time."""
    event = Event(wall_time=time.time(), step=step)
    add = event.summary.value.add  # filled in place: building Summary.Values and then the event takes twice as long
    for tag, value in scalars.items():
        add(tag=tag, simple_value=value)
    return event


class RunWriter(SummaryWriter):
    """The ``SummaryWriter`` of a training run, which also writes the scalars of a step together
    (:meth:`add_step_scalars`). A writer of one run hands those of up to ``PENDING_STEPS`` steps, or
    ``PENDING_SECONDS`` seconds, to TensorBoard's writing thread at once: each hand-over wakes that thread, and on a
    small machine the switch between threads costs more than the scalars themselves (the guide's speed page gives the
    figures). The writers of a stack's models, ``synchronous``, write in the calling thread instead
    (:class:`SynchronousFileWriter`), into the file's buffer, which goes to disk every ``PENDING_SECONDS``; their
    files may be ``deferred``, made by :func:`make_files`.

    Each step keeps the wall time at which it was logged. ``flush`` and ``close`` hand over what is pending first, so
    checkpoints, the end of a run and a stopped run write everything; a process killed outright loses at most the
    pending steps, as it loses what the writing thread holds (which writes to disk every 2 minutes, ``flush_secs``).
    """

    PENDING_STEPS = 100
    PENDING_SECONDS = 10.0

    if TYPE_CHECKING:  # set by SummaryWriter's unannotated code: None, a FileWriter or a SynchronousFileWriter
        file_writer: Any
        all_writers: Any

    def __init__(self, *args: Any, synchronous: bool = False, deferred: bool = False, **kwargs: Any) -> None:
        self._pending: list[Event] = []
        self._events: dict[tuple[str, ...], tuple[Event, list[Any]]] = {}
        self._synchronous, self._deferred = synchronous, deferred
        super().__init__(*args, **kwargs)

    def sibling(self, log_dir: str, purge_step: int | None) -> RunWriter:
        """A writer like this one for another run directory, made as a copy: ``SummaryWriter``'s constructor
        computes a table of histogram buckets (about 0.2 ms) for each writer, which a stack of hundreds of models
        would pay once per model; the copies share it, as they share every setting but the directory, and the
        events they refill with scalars (each is written as soon as it is filled)."""
        writer = copy.copy(self)
        writer.log_dir, writer.purge_step, writer._pending = log_dir, purge_step, []
        writer.file_writer = writer.all_writers = None
        writer._get_file_writer()
        return writer

    def _get_file_writer(self) -> Any:
        """With ``synchronous``, a file writer that writes in the calling thread (:class:`SynchronousFileWriter`):
        a stack of hundreds of models would otherwise start as many writing threads, which costs more than its
        training."""
        if not self._synchronous or (self.all_writers is not None and self.file_writer is not None):
            # SummaryWriter's own, named so that mypy's untyped_calls_exclude (torch) covers it, as super()'s is not
            return SummaryWriter._get_file_writer(self)
        self.file_writer = SynchronousFileWriter(
            self.log_dir, self.filename_suffix, self.PENDING_SECONDS, self._deferred
        )
        self.all_writers = {self.file_writer.get_logdir(): self.file_writer}
        if self.purge_step is not None:  # as SummaryWriter does: TensorBoard drops the events from this step on
            self.file_writer.add_event(Event(step=self.purge_step, file_version="brain.Event:2"))
            self.file_writer.add_event(Event(step=self.purge_step, session_log=SessionLog(status=SessionLog.START)))
            self.purge_step = None
        return self.file_writer

    def add_summary(self, summary: Summary, step: int | None = None) -> None:
        """A summary built elsewhere, such as :func:`image_summary`'s, at ``step``."""
        self._get_file_writer().add_summary(summary, step)

    def add_step_scalars(self, scalars: dict[str, float], step: int) -> None:
        """Several scalars of one step, in one event of the values ``add_scalar`` writes (``simple_value``)."""
        self.add_step_values(tuple(scalars), scalars.values(), step)

    def add_step_values(self, tags: tuple[str, ...], values: Iterable[float], step: int) -> None:
        """The scalars ``values`` of ``tags`` at ``step``, as :meth:`add_step_scalars` writes them.

        A stack's writer refills one event per set of tags and writes it at once: filling a message in place takes
        a third of the time of building it (about 1 against 2.6 µs for four scalars), which a stack of hundreds of
        models pays at each logged epoch. One model's builds an event of its own, kept until it is handed over."""
        if not self._synchronous:
            event = scalars_event(dict(zip(tags, values)), step)
            self._pending.append(event)
            if (
                len(self._pending) >= self.PENDING_STEPS
                or event.wall_time - self._pending[0].wall_time >= self.PENDING_SECONDS
            ):
                self._hand_over()
            return
        if tags not in self._events:
            event = scalars_event(dict.fromkeys(tags, 0.0), step)
            self._events[tags] = (event, list(event.summary.value))
        event, slots = self._events[tags]
        event.wall_time, event.step = time.time(), step
        for slot, value in zip(slots, values):
            slot.simple_value = value
        (self.file_writer or self._get_file_writer()).write(event)

    def _hand_over(self) -> None:
        pending, self._pending = self._pending, []
        for event in pending:
            self._get_file_writer().add_event(event, walltime=event.wall_time)

    def flush(self) -> None:
        self._hand_over()
        super().flush()

    def close(self) -> None:
        if self.all_writers is not None:  # not closed yet
            self._hand_over()
        super().close()
        self._deferred = False  # a file after this one is made at once: make_files makes a stack's first ones


# Buckets of a histogram: TensorFlow 2's default (tf.summary.histogram). The default of add_histogram, bins=
# "tensorflow", makes over a thousand buckets for any tensor, and a dashboard four times slower to write.
HISTOGRAM_BINS = 30


def write_dashboard(writer: RunWriter, model: ShallowNet, X: Tensor, Y: Tensor, step: int) -> None:
    """Histograms of θ and ∇J (tags ``parameters/W1``... and ``gradients/W1``...), and for 2-D data the decision
    boundary. The groups keep the histograms together, after ``accuracy`` and ``cost``: bare tags W1, W2 would
    sort before them (capitals first) and take the landing page's first, expanded sections."""
    for name, p in model.named_parameters():
        writer.add_histogram(f"parameters/{name}", p.detach(), step, bins=HISTOGRAM_BINS)
        if p.grad is not None:
            writer.add_histogram(f"gradients/{name}", p.grad, step, bins=HISTOGRAM_BINS)
    if isinstance(X, Tensor) and X.shape[1] == 2 and model.out_features == 1:  # in memory: on disk it may be huge
        image = image_summary("decision_boundary", decision_boundary_image(model, X, Y))
        writer.add_summary(image, step)


def image_summary(tag: str, image: Tensor) -> Summary:
    """A (3, H, W) image in [0, 1] as ``add_image`` writes it, scaled to bytes and encoded as PNG, but with zlib's
    fastest level: it takes half the time of Pillow's default, the largest part of drawing a dashboard, for a file
    about 1.5 times as large."""
    _, height, width = image.shape
    png = io.BytesIO()
    pixels = (image.float().permute(1, 2, 0) * 255).clamp(0, 255).to(torch.uint8).numpy()
    Image.fromarray(pixels).save(png, format="PNG", compress_level=1)
    encoded = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=png.getvalue())
    return Summary(value=[Summary.Value(tag=tag, image=encoded)])


def write_layout(writers: list[RunWriter], extra: dict[str, Any] | None = None) -> None:
    """A Custom Scalars layout with training and validation curves in one chart each, and the charts of ``extra``
    (a callback's, such as :data:`~torch_shallow.instruments.LAYOUT`), in each writer's run; a run's last layout is
    the one shown. What ``add_custom_scalars`` writes, built once for every run of a stack."""
    layout = custom_scalars(
        {
            "cost": {"train and validation": ["Multiline", ["cost/train", "cost/val"]]},
            "accuracy": {"train and validation": ["Multiline", ["accuracy/train", "accuracy/val"]]},
            **(extra or {}),
        }
    )
    for writer in writers:
        writer.add_summary(layout)


# Rows of X the graph is traced with: enough that the shapes read as a batch, (8, d), not as one sample's (1, d).
GRAPH_ROWS = 8

# The outputs of a custom Function, named as in its docstring, for the nodes that unpack them.
FUNCTION_OUTPUTS = {ShallowNetFunction.__name__: ("Z2", "A1")}


def write_graph(writer: SummaryWriter, model: torch.nn.Module, X: Tensor) -> None:
    """The model's graph for the Graphs tab, traced with the first GRAPH_ROWS rows of X (a tensor or on-disk rows).

    ``add_graph`` traces with ``torch.jit.trace``, deprecated in recent PyTorch but still the only path TensorBoard
    reads, and names each node after the value it computes: the custom Function's ``prim::PythonOp`` node gets the
    tracer's bare number ("60"). Tracing here and naming the values (:func:`_name_values`) shows it as
    ``ShallowNetFunction``, fed by X, W1, b1, W2 and b2; ``add_graph`` takes the traced module as it is.
    """
    rows = X[:GRAPH_ROWS]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the boundary's shape checks: constants of a trace
        warnings.filterwarnings("ignore", "The input to trace is already a ScriptModule")  # add_graph's own trace
        # no check_trace: its second trace and comparison cost half a second in a new process, more than the
        # rest of the dashboard over a whole run, and a module without randomness traces the same each time
        traced = torch.jit.trace(model, rows, check_trace=False)
        _name_values(traced.graph)
        writer.add_graph(traced, rows)


def _name_values(graph: torch.Graph) -> None:
    """Name the traced graph's values as a reader of the slides would: the inputs after forward's arguments,
    without the tracer's suffix (X, not X.1), each custom Function's result after the Function, and the outputs
    that a tuple-returning Function's node unpacks after FUNCTION_OUTPUTS."""
    for value in list(graph.inputs())[1:]:  # the first is the module itself
        value.setDebugName(value.debugName().partition(".")[0])
    for node in graph.nodes():
        if node.kind() == "prim::PythonOp":
            result = node.output()
            function = node.pyname()  # type: ignore[attr-defined]  # torch._C.Node's stub lacks pyname
            result.setDebugName(function)
            for use in result.uses():
                if use.user.kind() == "prim::TupleUnpack" and function in FUNCTION_OUTPUTS:
                    for value, name in zip(use.user.outputs(), FUNCTION_OUTPUTS[function]):
                        value.setDebugName(name)


@contextlib.contextmanager
def open_writers(runs: list[Path], purge_steps: list[int] | None) -> Iterator[list[RunWriter]]:
    """A :class:`RunWriter` for each run directory, closed at the end of the block. ``purge_steps``: a resumed run's
    first epoch for each run, from which TensorBoard drops what the interrupted run had logged. A stack's models
    resume at their own epochs: one that had stopped logs its final values again, and one reopened by a smaller
    ``tol`` logs from where it stopped."""
    with contextlib.ExitStack() as stack:
        stacked = len(runs) > 1  # a stack's: files written in the training thread, made while it trains
        writers: list[RunWriter] = []
        for k, run in enumerate(runs):
            purge_step = None if purge_steps is None else purge_steps[k]
            if writers:
                writer = writers[0].sibling(str(run), purge_step)
            else:
                writer = RunWriter(str(run), purge_step=purge_step, synchronous=stacked, deferred=stacked)
            stack.callback(_close, writer)
            writers.append(writer)
        if stacked:
            maker = ThreadPoolExecutor(1, thread_name_prefix="torch_shallow-event-files")
            stack.callback(maker.shutdown)  # after the writers are closed: they wait for their files
            make_files([writer.file_writer for writer in writers], maker)
        with _quiet_writer_thread():
            yield writers


def _close(writer: RunWriter) -> None:
    with contextlib.suppress(OSError):  # a failure to write was reported where it happened
        writer.close()


@contextlib.contextmanager
def _quiet_writer_thread() -> Iterator[None]:
    """TensorBoard writes from a thread of its own, which prints a traceback when the disk fills up; the writer
    raises the same error at the next write, and the trainer reports it with what it did about it, once."""
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if not (issubclass(args.exc_type, OSError) and type(args.thread).__module__.startswith("tensorboard.")):
            previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous


class TensorBoard(Callback):
    """The scalars of each running model every ``every`` epochs, all at θ(t), at step t: ``cost/train``,
    ``accuracy/train`` (counted in the pass that computes the cost, which the next epoch then reuses),
    ``grad_norm``, the ``lr`` about to be used, and with validation data ``cost/val`` and ``accuracy/val``. At the
    start of a new run, the layout and the model's graph (one model only: a stack's models share one architecture,
    and tracing each would cost seconds). At the end, the trained models' values at step ``epochs``, so that each
    curve ends at the final cost (where that step was not logged already), and each run's hyperparameters for the
    HParams dashboard."""

    every: int  # never None here

    def __init__(self, every: int, hparams: list[dict[str, object]], summary: dict[str, object]) -> None:
        self.every, self.hparams, self.summary = every, hparams, summary
        self._logged: dict[int, int] = {}  # the step each model's scalars were last logged at

    def on_fit_start(self, run: Run) -> None:
        if run.epoch == 0:
            write_layout(run.writers)
            if len(run.writers) == 1:
                write_graph(run.writers[0], run.models[0], run.X)
        self.on_epoch_end(run)

    def on_epoch_end(self, run: Run) -> None:
        if run.last or run.epoch % self.every != 0:
            return
        result = run.cost_and_grad(count_right=True)
        columns: dict[str, list[float]] = {"cost/train": result.J.reshape(-1).tolist()}
        right = cast(Tensor, result.right)  # counted: count_right=True
        columns["accuracy/train"] = (right.reshape(-1).double() / (run.n * labels_per_row(run.trainee))).tolist()
        if run.val is not None:
            columns["cost/val"], columns["accuracy/val"] = run.validation()
        columns["grad_norm"], columns["lr"] = run.trainee.grad_norms(), run.learning_rates
        if not run.writers:
            return
        tags = _with_accuracy(columns)
        logged, costs = [columns[tag] for tag in tags], columns["cost/train"]
        for k, (history, writer) in enumerate(zip(run.histories, run.writers)):
            if run.running[k] and not diverging(history, costs[k]):  # at its own epoch: a resumed stack's may differ
                writer.add_step_values(tags, [column[k] for column in logged], history.epochs)
                self._logged[k] = history.epochs

    def on_fit_end(self, run: Run) -> None:
        if run.interrupted:
            return
        columns: dict[str, list[float]] = {
            "cost/train": [h.final_cost for h in run.histories],
            "accuracy/train": [h.train_accuracy for h in run.histories],
        }
        if run.val is not None:
            columns["cost/val"] = [cast(float, h.val_cost) for h in run.histories]
            columns["accuracy/val"] = [cast(float, h.val_accuracy) for h in run.histories]
        tags = _with_accuracy(columns)
        architecture = run.trainee.architecture()
        architectures = architecture if isinstance(architecture, list) else [architecture]
        for k, (history, writer) in enumerate(zip(run.histories, run.writers)):
            if self._logged.get(k) != history.epochs:  # a callback after this one may stop a model it just logged
                writer.add_step_scalars({tag: columns[tag][k] for tag in tags}, history.epochs)
            training = {"lr": run.learning_rates[k], **self.summary}
            write_summary(writer, architectures[k], training, self.hparams[k])


def _with_accuracy(columns: dict[str, list[float]]) -> tuple[str, ...]:
    """The tags of ``columns`` without accuracies that mean nothing: identity outputs count no right answers, and
    every model's accuracy is NaN."""
    return tuple(tag for tag, values in columns.items() if not (tag.startswith("accuracy/") and math.isnan(values[0])))


class Dashboard(Callback):
    """Every ``every`` epochs and at the end, histograms of θ and ∇J and, for 2-D data, the decision boundary
    (:func:`write_dashboard`), of at most ``models`` models: those of the lowest cost at that epoch (None: all).
    A stack of hundreds of models would otherwise spend most of its time drawing. Where models are chosen, none is
    drawn at epoch 0: the costs of untrained models do not tell which will be the best, and the draws would cost a
    short sweep as much as its training. A model that has stopped is drawn once more, at the end, with its final θ
    (unless it was drawn at its last epoch already)."""

    every: int  # never None here

    def __init__(self, every: int, models: int | None) -> None:
        self.every, self.models = every, models
        self._drawn: dict[int, int] = {}  # the step each model was last drawn at

    def on_fit_start(self, run: Run) -> None:
        self.on_epoch_end(run)

    def on_epoch_end(self, run: Run) -> None:
        if run.last or run.epoch % self.every != 0 or (run.epoch == 0 and self._choosing(run)):
            return
        # J and ∇J(θ(t)), for the choice and the histograms: a pass on every rank (its sums are reduced over the
        # ranks), which the next epoch takes over
        costs = run.cost_and_grad().J.reshape(-1).tolist()
        if run.writers:
            running = [k for k, on in enumerate(run.running) if on]
            self._write(run, running, costs, [h.epochs for h in run.histories])

    def on_fit_end(self, run: Run) -> None:
        if run.interrupted or not run.writers:
            return
        everyone = range(len(run.histories))
        self._write(run, everyone, [h.final_cost for h in run.histories], [h.epochs for h in run.histories])

    def _choosing(self, run: Run) -> bool:
        return self.models is not None and self.models < len(run.histories)

    def _write(self, run: Run, candidates: Sequence[int], costs: list[float], steps: list[int]) -> None:
        """The dashboards of the ``models`` candidates of lowest cost, each at its own step."""
        chosen = sorted(candidates, key=lambda k: (math.isnan(costs[k]), costs[k]))[: self.models]
        chosen = [k for k in chosen if self._drawn.get(k) != steps[k]]
        for k, model in zip(chosen, run.trainee.models(chosen)):
            write_dashboard(run.writers[k], model, run.X, run.Y, steps[k])
            self._drawn[k] = steps[k]


# Recorded by the command line with a run's hyperparameters, for resuming; not hyperparameters themselves.
RUN_SETTINGS = ("device", "dtype", "save")


def write_summary(
    writer: RunWriter, architecture: dict[str, Any], training: dict[str, object], hparams: dict[str, object]
) -> None:
    """The run's hyperparameters, for the HParams dashboard, whose metrics are the curves' last points: those of
    ``training`` (lr, max_epochs, tol, optimizer, patience), the model's (``architecture``, as
    :func:`~torch_shallow.checkpoint.architecture` gives it), and the caller's ``hparams``, of which values that are
    None (options not used) and the settings of where and in what precision it ran are kept in the checkpoint only."""
    run = {
        **training,
        "hidden_features": architecture["hidden_features"],
        "activation": architecture["activation"],
        **{k: v for k, v in hparams.items() if v is not None and k not in RUN_SETTINGS},
    }
    if architecture["output"] != "sigmoid":
        run["output"] = architecture["output"]
    write_hparams(writer, run)
