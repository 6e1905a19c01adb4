"""On-the-fly augmentation of training crops with MUSAN noise, babble and music and with simulated
room impulse responses, as the later voxceleb_trainer (AugmentWAV) and Kaldi's VoxCeleb recipe do.

Crops are float32 in int16 range (voxtrainer.reading.audio's convention), or in [-1, 1) under the 2021 audio
protocol: noise is mixed at an SNR relative to the crop and RIRs have unit energy, so either scale
works (only the 1e-4 floor of energy_db weighs differently). Every random draw comes from the
`random.Random` passed in, so a crop's augmentation depends only on its sampler seed."""

import os

import numpy
from scipy import signal

from voxtrainer.reading.audio import SAMPLE_RATE, Remedies, open_audio, read_samples
from voxtrainer.errors import InputError

# MUSAN folder: (SNR range in dB, range of how many of its files are mixed into one crop).
NOISE_TYPES = {
    "noise": ((0.0, 15.0), (1, 1)),
    "speech": ((13.0, 20.0), (3, 7)),  # babble: several talkers at once
    "music": ((5.0, 15.0), (1, 1)),
}
# voxceleb_trainer draws one of these five per crop: a fifth of the crops stay clean, as Kaldi
# also keeps the clean copy beside the augmented ones.
CHOICES = ("clean", "reverb", "music", "speech", "noise")
DATAPREP_HINT = "python dataprep.py --augment --save_path DIR"


def energy_db(audio):
    """voxceleb_trainer's level: the 1e-4 keeps silent crops finite."""
    return 10 * numpy.log10(numpy.mean(numpy.square(audio, dtype=numpy.float64)) + 1e-4)


def find_wavs(folder):
    return sorted(os.path.join(parent, name) for parent, _, names in os.walk(folder)
                  for name in names if name.lower().endswith(".wav"))


def open_augmentation_audio(path, flag):
    """An open soundfile.SoundFile of a 16 kHz mono augmentation file from the `flag` folder;
    InputError naming the file and what to do otherwise. One open per file read: the loader
    workers read several per crop."""
    return open_audio(path, Remedies(
        unreadable="remove it from the %s folder" % flag,
        sample_rate="augmentation files must be 16 kHz like the training audio; resample the %s folder (e.g. "
                    "ffmpeg -ar %d) or re-run %s" % (flag, SAMPLE_RATE, DATAPREP_HINT),
        channels="use the simulated RIRs, e.g. --rir_path DIR/RIRS_NOISES/simulated_rirs",
        empty="remove it from the %s folder" % flag))


class Augmenter:
    """`augmenter(crop, rng)`: the crop, clean or with one augmentation, of the same length."""

    def __init__(self, musan_path, rir_path):
        if not os.path.isdir(musan_path):
            raise InputError("--musan_path %s: folder not found; fetch MUSAN with '%s' and pass "
                             "--musan_path DIR/musan_split" % (musan_path, DATAPREP_HINT))
        self.noise_files = {kind: find_wavs(os.path.join(musan_path, kind)) for kind in NOISE_TYPES}
        empty = [kind for kind, files in self.noise_files.items() if not files]
        if empty:
            raise InputError("--musan_path %s: no .wav files in %s; it must hold MUSAN's noise/, speech/ and "
                             "music/ folders, as '%s' writes them to DIR/musan_split" % (
                                 musan_path, ", ".join("%s/" % kind for kind in empty), DATAPREP_HINT))
        if not os.path.isdir(rir_path):
            raise InputError("--rir_path %s: folder not found; fetch the simulated RIRs with '%s' and pass "
                             "--rir_path DIR/RIRS_NOISES/simulated_rirs" % (rir_path, DATAPREP_HINT))
        self.rir_files = find_wavs(rir_path)
        if not self.rir_files:
            raise InputError("--rir_path %s: no .wav room impulse responses in it; fetch them with '%s' and "
                             "pass --rir_path DIR/RIRS_NOISES/simulated_rirs" % (rir_path, DATAPREP_HINT))
        # Fail before training starts on a wrong corpus; every later read is checked again.
        firsts = [(files[0], "--musan_path") for files in self.noise_files.values()]
        for path, flag in firsts + [(self.rir_files[0], "--rir_path")]:
            with open_augmentation_audio(path, flag):
                pass

    def __call__(self, crop, rng):
        kind = rng.choice(CHOICES)
        if kind == "clean":
            return crop
        if kind == "reverb":
            return self.reverberate(crop, rng)
        return self.add_noise(crop, kind, rng)

    def add_noise(self, crop, kind, rng):
        """Random crops of 1 (noise, music) or 3-7 (babble) files, each scaled to its own SNR re the crop."""
        (lowest_snr, highest_snr), (fewest, most) = NOISE_TYPES[kind]
        candidates = self.noise_files[kind]
        chosen = rng.sample(candidates, min(rng.randint(fewest, most), len(candidates)))
        clean_db = energy_db(crop)
        noisy = crop.copy()
        for path in chosen:
            noise = self.noise_crop(path, crop.shape[0], rng)
            snr = rng.uniform(lowest_snr, highest_snr)
            noisy += numpy.float32(numpy.sqrt(10 ** ((clean_db - energy_db(noise) - snr) / 10))) * noise
        return noisy

    @staticmethod
    def noise_crop(path, length, rng):
        """`length` samples from a random position; a shorter file is repeated (wrap padding, as the
        later voxceleb_trainer), so that the noise lasts the whole crop."""
        hint = "; remove it from the --musan_path folder"
        with open_augmentation_audio(path, "--musan_path") as handle:
            if handle.frames >= length:
                handle.seek(int(rng.random() * (handle.frames - length + 1)))
                return read_samples(handle, length, hint)
            return numpy.resize(read_samples(handle, handle.frames, hint), length)

    def reverberate(self, crop, rng):
        """The crop convolved with a unit-energy RIR, cut to the crop's length (the reverberant tail
        past the crop is dropped, as in voxceleb_trainer). The RIR is read as float64 at whatever
        scale its format has (not through read_samples: the unit-energy scaling makes the scale
        irrelevant, and the int16 conversion would cut the quiet tail of 24-bit or float RIRs)."""
        path = rng.choice(self.rir_files)
        with open_augmentation_audio(path, "--rir_path") as handle:
            rir = handle.read(dtype="float64")
        energy = numpy.sum(rir ** 2)
        if not numpy.isfinite(energy):
            raise InputError("%s: room impulse response holds non-finite samples (NaN or infinity); remove it from "
                             "the --rir_path folder" % path)
        if energy == 0:
            raise InputError("%s: room impulse response is all zeros; remove it from the --rir_path folder" % path)
        # float32 FFTs: half the time of float64, far below the crop's int16 resolution.
        rir = (rir / numpy.sqrt(energy)).astype(numpy.float32)
        return signal.fftconvolve(crop, rir)[:crop.shape[0]].astype(numpy.float32)
