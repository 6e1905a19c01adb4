"""Looking up every file of a list: in threads (stat waits on the disk or the network file
system, not on the interpreter), in chunks, with a progress bar once it takes a few seconds."""

import os
from concurrent.futures import ThreadPoolExecutor

CHUNK = 4096  # paths per task: large enough that thread hand-offs cost nothing beside the stats
PROGRESS_DELAY_S = 3.0  # the bar appears only when the check takes longer than this


def _missing_in(paths, first):
    return [first + offset for offset, path in enumerate(paths) if not os.path.isfile(path)]


def missing_indexes(paths, progress=True, what="Looking up files", threads=None):
    """Indexes (ascending) of the `paths` (a sequence of str) that are not files on disk."""
    from tqdm import tqdm
    threads = threads or min(16, 4 * (os.cpu_count() or 1))
    starts = range(0, len(paths), CHUNK)
    bar = tqdm(total=len(paths), desc=what, unit="file", leave=False, delay=PROGRESS_DELAY_S,
               disable=not progress or len(starts) < 2)
    missing = []
    try:
        with ThreadPoolExecutor(threads) as pool:
            chunks = pool.map(lambda start: _missing_in(paths[start:start + CHUNK], start), starts)
            for start, found in zip(starts, chunks):
                missing.extend(found)
                bar.update(min(CHUNK, len(paths) - start))
    finally:
        bar.close()
    return missing
