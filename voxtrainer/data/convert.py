"""VoxCeleb2's m4a files (and, for --make_lists --from_folder, any recording ffmpeg reads) to the
16 kHz mono 16-bit wav the trainer reads, with parallel ffmpeg processes.

The work is found again from the files on disk: a wav only carries its final name once ffmpeg has
finished it, so a run that was interrupted (even killed) is resumed by running it again."""

import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed

from tqdm import tqdm

from voxtrainer.data.report import DataprepError

FFMPEG_INSTALL_HINT = ("install it, e.g. 'sudo apt-get install ffmpeg' (Debian/Ubuntu), "
                       "'conda install -c conda-forge ffmpeg' or 'brew install ffmpeg' (macOS)")


def default_workers():
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def find_conversion_work(save_path):
    """(all m4a files, those without a wav yet); deletes temporary files of interrupted runs."""
    sources, todo = [], []
    for clip_dir in sorted(path for path in save_path.glob("voxceleb2/*/*") if path.is_dir()):
        names = set(os.listdir(clip_dir))
        for name in sorted(names):
            if name.endswith(".partial"):
                (clip_dir / name).unlink(missing_ok=True)
            elif name.endswith(".m4a"):
                sources.append(clip_dir / name)
                if name[:-len(".m4a")] + ".wav" not in names:
                    todo.append(clip_dir / name)
    return sources, todo


class Converter:
    """Runs ffmpeg per file; each output is written under a temporary name and renamed on success."""

    def __init__(self, ffmpeg):
        self.ffmpeg = ffmpeg
        self._running = set()
        self._lock = threading.Lock()
        self._stopping = False

    def convert(self, source, output=None):
        """`source` to `output` (default: the .wav beside it). Returns None on success, else a one-line
        reason."""
        output = source.with_suffix(".wav") if output is None else output
        # The pid keeps a still-running ffmpeg of a killed earlier run off our file.
        temporary = output.with_name(f"{output.name}.{os.getpid()}.partial")
        command = [self.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(source),
                   "-vn", "-ac", "1", "-ar", "16000", "-acodec", "pcm_s16le", "-f", "wav", str(temporary)]
        with self._lock:
            if self._stopping:
                return "interrupted"
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE)
            self._running.add(process)
        try:
            _, error = process.communicate()
        finally:
            with self._lock:
                self._running.discard(process)
        if process.returncode == 0 and temporary.exists() and temporary.stat().st_size > 44:
            os.replace(temporary, output)
            return None
        temporary.unlink(missing_ok=True)
        if process.returncode == 0:
            return "ffmpeg produced no audio"
        lines = error.decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else f"ffmpeg exited with status {process.returncode}"

    def stop(self):
        with self._lock:
            self._stopping = True
            for process in self._running:
                process.kill()


def find_ffmpeg():
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise DataprepError(f"ffmpeg not found on PATH; {FFMPEG_INSTALL_HINT}")
    return ffmpeg


def convert_files(jobs, workers, total=None):
    """Run ffmpeg on every (source, output) of `jobs`, `workers` at a time, with a progress bar out of
    `total` files (default: the jobs; more when some were done before). Returns [(source, reason)] of
    the files that failed, sorted. Ctrl-C or SIGTERM kills the running ffmpeg processes."""
    total = len(jobs) if total is None else total
    converter = Converter(find_ffmpeg()) if jobs else None
    failures = []
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = {pool.submit(converter.convert, source, output): source for source, output in jobs}
        with tqdm(total=total, initial=total - len(jobs), unit="file", desc="convert") as bar:
            for future in as_completed(futures):
                reason = future.result()
                if reason is not None:
                    failures.append((futures[future], reason))
                bar.update(1)
    except BaseException:
        # Ctrl-C or SIGTERM: kill the running ffmpeg processes, so that no .partial outlives us.
        if converter is not None:
            converter.stop()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return sorted(failures)


def convert_all(save_path, workers):
    find_ffmpeg()
    sources, todo = find_conversion_work(save_path)
    if not sources:
        raise DataprepError(f"no {save_path / 'voxceleb2'}/*/*/*.m4a files: run --extract first")
    print(f"converting {len(todo)} of {len(sources)} m4a files to 16 kHz wav with {workers} workers "
          f"({len(sources) - len(todo)} already done)")
    failures = convert_files([(source, source.with_suffix(".wav")) for source in todo], workers, len(sources))
    if failures:
        for source, reason in failures:
            print(f"failed: {source}: {reason}", file=sys.stderr)
        raise DataprepError(f"{len(failures)} of {len(todo)} files failed to convert (listed above); "
                            f"fix or delete them and re-run --convert")
