"""The child process of tools/benchmark_scale.py: runs the trainer of the repository `--repo` (this
one, or an older checkout for a before/after comparison) with timestamps and memory readings
written as JSON lines to an events file. Not for use on its own.

    python tools/scale_probe.py --repo DIR --events FILE --watch_s S train -- <trainSpeakerNet flags>
    python tools/scale_probe.py --repo DIR --events FILE eval -- <trainSpeakerNet --eval flags>
    python tools/scale_probe.py --repo DIR --events FILE sampler -- LIST ROOT BATCH_SIZE N_PER_SPEAKER MAX_SEG

train: the network's step is replaced by a no-op (timestamp `first_step` at the entry of the first
one, `first_minutes` `--watch_s` seconds later), so the loader workers run flat out; at the end of the first epoch (workers still alive, as
they are persistent) `epoch_end` is written and the process ends. eval: `first_batch` when the
first batch of crops reaches the network, then the process ends. Every event carries the memory
(USS, PSS, RSS from /proc/<pid>/smaps_rollup) of this process and of each of its children (the
loader workers), and the peaks sampled every SAMPLE_S since the start."""

import argparse
import json
import os
import sys
import threading
import time

SAMPLE_S = 0.5
MB = 1024 * 1024


def memory_of(pid):
    """{uss, pss, rss} in MB of a process from /proc/<pid>/smaps_rollup (None once it is gone)."""
    fields = {}
    try:
        with open("/proc/%d/smaps_rollup" % pid) as handle:
            for line in handle:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    fields[parts[0].rstrip(":")] = int(parts[1]) * 1024
    except OSError:
        return None
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return {"uss": round(uss / MB, 1), "pss": round(fields.get("Pss", 0) / MB, 1),
            "rss": round(fields.get("Rss", 0) / MB, 1)}


def children_of(pid):
    """This process's child pids, in order of creation (ascending pid within one run)."""
    found = []
    for task in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/children" % (pid, task)) as handle:
                found.extend(int(child) for child in handle.read().split())
        except OSError:
            continue
    return sorted(set(found))


class MemoryWatch:
    """Peak memory of this process and of each child, sampled in a thread every SAMPLE_S."""

    def __init__(self):
        self.peaks, self.lock = {}, threading.Lock()
        threading.Thread(target=self._run, daemon=True).start()

    def snapshot(self):
        """{"main": memory, "workers": [memory of each child]} now, and the peaks folded in."""
        main = memory_of(os.getpid())
        workers = {pid: memory_of(pid) for pid in children_of(os.getpid())}
        with self.lock:
            for pid, reading in [(os.getpid(), main)] + list(workers.items()):
                if reading is not None:
                    peak = self.peaks.setdefault(pid, dict(reading))
                    for key, value in reading.items():
                        peak[key] = max(peak[key], value)
        return {"main": main, "workers": [reading for reading in workers.values() if reading is not None]}

    def peak_summary(self):
        with self.lock:
            others = [self.peaks[pid] for pid in sorted(self.peaks) if pid != os.getpid()]
            return {"main": self.peaks.get(os.getpid()), "workers": others}

    def _run(self):
        while True:
            self.snapshot()
            time.sleep(SAMPLE_S)


class Events:
    def __init__(self, path, watch):
        self.path, self.watch = path, watch

    def write(self, name, **fields):
        times = os.times()
        record = {"event": name, "t": time.time(), "cpu_s": round(times.user + times.system, 2),
                  "now": self.watch.snapshot(), "peak": self.watch.peak_summary()}
        record.update(fields)
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")


def hook_training(events, watch_s):
    """No-op steps (the first timestamped, `first_minutes` written `watch_s` after it), and the
    process ended at the end of the first epoch."""
    import torch
    try:
        import voxtrainer.training.loop as training
    except ImportError:  # a checkout from before the package was grouped (--repo of an older commit)
        import voxtrainer.training as training
    run_epoch, seen = training.run_epoch, {"steps": 0, "first": None, "watched": False}

    def no_step(model, data, label, optimizer, scaler, mixedprec, watch=None):
        if seen["first"] is None:
            events.write("first_step")
            seen["first"] = time.time()
        elif not seen["watched"] and time.time() - seen["first"] >= watch_s:
            events.write("first_minutes", steps=seen["steps"])
            seen["watched"] = True
        seen["steps"] += 1
        return torch.zeros(()), torch.zeros(())

    def one_epoch(*args, **kwargs):
        started = time.time()
        result = run_epoch(*args, **kwargs)
        if not seen["watched"]:  # the epoch was shorter than the watch
            events.write("first_minutes", steps=seen["steps"], epoch_shorter_than_watch=True)
        events.write("epoch_end", steps=seen["steps"], epoch_s=round(time.time() - started, 2))
        os._exit(0)
        return result

    training.train_step, training.run_epoch = no_step, one_epoch


def hook_evaluation(events):
    """The process ended when the first batch of crops reaches the network."""
    def first_batch(net, crops, *args, **kwargs):
        events.write("first_batch", crops=int(crops.shape[0]))
        os._exit(0)

    try:
        from voxtrainer.inference import embedding
        embedding.embed_crops = first_batch  # every pass over files embeds its crops through it
    except ImportError:  # a checkout from before the package was grouped: SpeakerNet embedded them
        from voxtrainer.network import SpeakerNet
        SpeakerNet.embed_crops = first_batch


def time_sampler(events, listfile, root, batch_size, group_size, max_seg_per_spk):
    """Seconds to build the repository's SpeakerBatchSampler and to draw and iterate two epochs."""
    from voxtrainer.reading.datasets import SpeakerBatchSampler
    from voxtrainer.reading.lists import TrainList
    labels = TrainList(listfile, root).labels
    started = time.time()
    sampler = SpeakerBatchSampler(labels, group_size, max_seg_per_spk, batch_size, seed=10)
    built = time.time() - started
    epochs = []
    for epoch in (1, 2):
        started = time.time()
        sampler.set_epoch(epoch)
        batches = len(sampler)
        drawn = time.time() - started
        count = sum(1 for _ in sampler)
        epochs.append({"epoch": epoch, "batches": batches, "draw_s": round(drawn, 3),
                       "draw_and_iterate_s": round(time.time() - started, 3), "iterated": count})
    events.write("sampler", build_s=round(built, 3), epochs=epochs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", required=True)
    parser.add_argument("--events", required=True)
    parser.add_argument("--watch_s", type=float, default=60.0)
    parser.add_argument("mode", choices=["train", "eval", "sampler"])
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    sys.path.insert(0, os.path.abspath(args.repo))
    os.chdir(args.repo)
    events = Events(args.events, MemoryWatch())
    if args.mode == "sampler":
        listfile, root, batch_size, group_size, max_seg = rest
        time_sampler(events, listfile, root, int(batch_size), int(group_size), int(max_seg))
        return 0
    import trainSpeakerNet
    if args.mode == "train":
        hook_training(events, args.watch_s)
    else:
        hook_evaluation(events)
    status = trainSpeakerNet.main(rest)
    events.write("ended", status=status)
    return status


if __name__ == "__main__":
    sys.exit(main())
