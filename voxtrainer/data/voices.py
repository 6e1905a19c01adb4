"""The synthetic voices of the demo set (voxtrainer/data/demo.py): a source-filter synthesiser
(glottal pulse train with jitter, shimmer and aspiration noise, shaped by a time-varying formant
envelope) whose speaker identity lives only in voice parameters (pitch level, range and contour,
vocal-tract length and formant offsets, bandwidths, spectral tilt, breathiness, speaking rate),
and the recording conditions (channel, level, coloured noise) each utterance goes through.
Every draw comes from a numpy Generator the caller seeds."""

from dataclasses import dataclass, replace

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage, signal

from voxtrainer import SAMPLE_RATE

FFT_SIZE = 512
HOP = 128  # 8 ms frames: fine enough for formant transitions and stop bursts
FRAME_S = HOP / SAMPLE_RATE


# Voiced phones of an adult male reference vocal tract: F1-F3 in Hz (roughly
# Hillenbrand et al. 1995 vowels plus nasals / a liquid) and a relative
# amplitude. Higher formants are nearly phone independent; F6 and F7 stand
# in for the infinitely many poles of a real tract, without which the
# spectrum above 5 kHz would collapse.
VOICED_PHONES = np.array([
    # F1,  F2,   F3,  gain
    [342, 2322, 3000, 1.0],   # i
    [427, 2034, 2684, 1.0],   # I
    [476, 2089, 2691, 1.0],   # e
    [580, 1799, 2605, 1.0],   # E
    [588, 1952, 2601, 1.0],   # ae
    [768, 1333, 2522, 1.0],   # a
    [652, 997, 2538, 1.0],    # o (open)
    [497, 910, 2459, 1.0],    # o
    [469, 1122, 2434, 1.0],   # U
    [378, 997, 2343, 1.0],    # u
    [623, 1200, 2550, 1.0],   # V
    [474, 1379, 1710, 1.0],   # er
    [280, 1000, 2200, 0.3],   # m
    [280, 1650, 2500, 0.3],   # n
    [360, 1300, 2800, 0.6],   # l
])
N_VOWELS = 12  # the first rows are vowels, the rest are voiced consonants
UPPER_FORMANTS_HZ = np.array([3500.0, 4500.0, 5500.0, 6500.0])
BASE_BANDWIDTHS_HZ = np.array([60.0, 90.0, 120.0, 180.0, 250.0, 350.0, 450.0])
N_FORMANTS = len(BASE_BANDWIDTHS_HZ)
HIGHEST_FORMANT_HZ = 0.47 * SAMPLE_RATE

# Frication noise bands: centre Hz, bandwidth Hz, level dB re the vowels.
FRICATIVE_BANDS = np.array([
    [6500, 3000, -12],   # s
    [3600, 2000, -12],   # sh
    [5000, 7000, -24],   # f / th
    [1900, 1300, -16],   # x
    [4000, 6000, -10],   # stop burst
])
BURST = len(FRICATIVE_BANDS) - 1

SILENCE, VOICED, FRICATIVE, VOICED_FRICATIVE, STOP = range(5)


@dataclass(frozen=True)
class SpeakerVoice:
    """Everything that identifies a synthetic speaker."""
    f0_hz: float                # median pitch
    f0_range_st: float          # size of pitch accents, semitones
    declination_st: float       # pitch fall over an utterance, semitones
    accent_rate: float          # probability that a syllable is accented
    formant_scale: float        # inverse vocal-tract length
    formant_offsets: np.ndarray  # personal per-phone, per-formant log offsets
    bandwidth_scale: float
    tilt_db_per_octave: float   # glottal source slope on top of the -6 dB/oct pulse
    breathiness: float          # aspiration noise re voicing amplitude
    tempo: float                # speaking rate, >1 is faster
    jitter: float               # relative period-to-period f0 variation
    shimmer: float              # relative period-to-period amplitude variation


@dataclass(frozen=True)
class Channel:
    """One recording condition, shared by the utterances of a clip."""
    b: np.ndarray
    a: np.ndarray


def speaker_rng(seed, split, speaker, stream, index=0):
    return np.random.default_rng([seed, split, speaker, stream, index])


def draw_speaker_voice(rng):
    # A shared "size" latent makes high voices tend to have short vocal
    # tracts, as in real populations, without making the two redundant.
    # The spreads are wider than within-speaker variation by design: the demo
    # must be learnable by a 34-layer net within a few CPU minutes.
    size = rng.uniform(0.0, 1.0)
    return SpeakerVoice(
        f0_hz=80.0 * 2.0 ** (2.0 * size + rng.normal(0.0, 0.5)),
        f0_range_st=rng.uniform(1.0, 3.5),
        declination_st=rng.uniform(0.0, 2.0),
        accent_rate=rng.uniform(0.2, 0.7),
        formant_scale=0.75 + 0.5 * size + rng.normal(0.0, 0.15),
        # A personal vowel space: offsets common to all phones plus per-phone ones.
        formant_offsets=(rng.normal(0.0, 0.25, size=(1, N_FORMANTS))
                         + rng.normal(0.0, 0.075, size=(len(VOICED_PHONES), N_FORMANTS))),
        bandwidth_scale=float(np.exp(rng.uniform(np.log(0.6), np.log(1.8)))),
        tilt_db_per_octave=rng.uniform(-8.0, 6.0),
        breathiness=float(np.exp(rng.uniform(np.log(0.02), np.log(0.5)))),
        tempo=float(np.exp(rng.uniform(np.log(0.75), np.log(1.35)))),
        jitter=rng.uniform(0.003, 0.02),
        shimmer=rng.uniform(0.02, 0.12),
    )


def perturb_voice(voice, rng):
    """Day-to-day drift of a speaker: small next to between-speaker spread."""
    return replace(
        voice,
        f0_hz=voice.f0_hz * 2.0 ** (rng.normal(0.0, 0.075) / 12.0),
        f0_range_st=voice.f0_range_st * np.exp(rng.normal(0.0, 0.1)),
        formant_scale=voice.formant_scale * (1.0 + rng.normal(0.0, 0.0025)),
        bandwidth_scale=voice.bandwidth_scale * np.exp(rng.normal(0.0, 0.05)),
        tilt_db_per_octave=voice.tilt_db_per_octave + rng.normal(0.0, 0.1),
        breathiness=voice.breathiness * np.exp(rng.normal(0.0, 0.12)),
        tempo=voice.tempo * np.exp(rng.normal(0.0, 0.06)),
    )


def draw_channel(rng):
    """Band limits of the microphone / codec plus a gentle resonance or dip."""
    high_pass = signal.butter(1, rng.uniform(60.0, 120.0), btype="highpass", fs=SAMPLE_RATE)
    low_pass = signal.butter(2, rng.uniform(6500.0, 7800.0), btype="lowpass", fs=SAMPLE_RATE)
    peak = peaking_eq(rng.uniform(300.0, 4000.0), rng.uniform(-1.5, 1.5), rng.uniform(0.7, 2.0))
    b = np.polymul(np.polymul(high_pass[0], low_pass[0]), peak[0])
    a = np.polymul(np.polymul(high_pass[1], low_pass[1]), peak[1])
    return Channel(b=b, a=a)


def peaking_eq(freq_hz, gain_db, q):
    """RBJ audio-EQ-cookbook peaking biquad."""
    amplitude = 10.0 ** (gain_db / 40.0)
    omega = 2.0 * np.pi * freq_hz / SAMPLE_RATE
    alpha = np.sin(omega) / (2.0 * q)
    b = np.array([1.0 + alpha * amplitude, -2.0 * np.cos(omega), 1.0 - alpha * amplitude])
    a = np.array([1.0 + alpha / amplitude, -2.0 * np.cos(omega), 1.0 - alpha / amplitude])
    return b / a[0], a / a[0]


def compose_sentence(rng, tempo, n_frames):
    """Random words of CV(C) syllables with pauses, as per-frame phone labels.

    Returns (kind, phone) per frame; phone indexes VOICED_PHONES for voiced
    kinds and FRICATIVE_BANDS for noise kinds.
    """
    kind = np.full(n_frames, SILENCE)
    phone = np.zeros(n_frames, dtype=int)

    def frames(ms_low, ms_high):
        return max(1, int(round(rng.uniform(ms_low, ms_high) / tempo / 1000.0 / FRAME_S)))

    def consonant():
        choice = rng.integers(0, 4)
        if choice == 0:
            return [(FRICATIVE, rng.integers(0, BURST), frames(60, 140))]
        if choice == 1:
            return [(VOICED_FRICATIVE, rng.integers(0, BURST), frames(50, 110))]
        if choice == 2:
            return [(SILENCE, 0, frames(30, 80)), (STOP, BURST, frames(10, 25))]
        return [(VOICED, rng.integers(N_VOWELS, len(VOICED_PHONES)), frames(40, 90))]

    pos = int(rng.integers(4, 25))  # leading silence before speech starts
    while pos < n_frames:
        segments = []
        for _ in range(rng.integers(1, 4)):
            if rng.random() < 0.7:
                segments += consonant()
            segments.append((VOICED, rng.integers(0, N_VOWELS), frames(70, 200)))
            if rng.random() < 0.25:
                segments += consonant()
        if rng.random() < 0.35:
            segments.append((SILENCE, 0, frames(80, 300)))
        for seg_kind, seg_phone, length in segments:
            kind[pos:pos + length] = seg_kind
            phone[pos:pos + length] = seg_phone
            pos += length
    return kind, phone


def smooth(track, width):
    """Hann-weighted moving average along frames: coarticulation and on/off ramps."""
    window = np.hanning(width + 2)[1:-1]
    return ndimage.convolve1d(track, window / window.sum(), axis=0, mode="nearest")


def formant_tracks(kind, phone, voice):
    """Per-frame formant frequencies in Hz: targets of voiced phones, held through consonants."""
    upper = np.broadcast_to(UPPER_FORMANTS_HZ, (len(VOICED_PHONES), len(UPPER_FORMANTS_HZ)))
    targets = np.concatenate([VOICED_PHONES[:, :3], upper], axis=1)
    targets = targets * voice.formant_scale * np.exp(voice.formant_offsets)
    is_voiced = (kind == VOICED)
    # Consonants borrow the formants of the nearest preceding voiced phone.
    last_voiced = np.maximum.accumulate(np.where(is_voiced, np.arange(len(kind)), -1))
    first_voiced = np.argmax(is_voiced) if is_voiced.any() else 0
    source_frame = np.where(last_voiced >= 0, last_voiced, first_voiced)
    tracks = np.minimum(targets[phone[source_frame]], HIGHEST_FORMANT_HZ)
    return np.exp(smooth(np.log(tracks), 5))


def pitch_contour(rng, voice, kind, n_samples):
    """Per-sample f0 in Hz: declination, random accents, slow wander, jitter."""
    n_frames = len(kind)
    position = np.linspace(0.0, 1.0, n_frames)
    semitones = voice.declination_st * (0.5 - position)
    syllable_starts = np.flatnonzero((kind == VOICED) & (np.roll(kind, 1) != VOICED))
    accented = syllable_starts[rng.random(len(syllable_starts)) < voice.accent_rate]
    frame_index = np.arange(n_frames)
    for start in accented:
        centre = start + rng.uniform(3, 12)
        width = rng.uniform(4, 12)
        height = voice.f0_range_st * rng.uniform(0.4, 1.0)
        semitones += height * np.exp(-0.5 * ((frame_index - centre) / width) ** 2)
    semitones += smooth(rng.normal(0.0, 1.5, n_frames), 25)
    f0 = voice.f0_hz * 2.0 ** (semitones / 12.0)
    f0 = np.interp(np.arange(n_samples) / HOP, frame_index, f0)
    # Jitter changes about once per period; 5 ms holds approximate that.
    hold = SAMPLE_RATE // 200
    jitter = np.repeat(rng.normal(0.0, voice.jitter, n_samples // hold + 1), hold)[:n_samples]
    return f0 * (1.0 + jitter)


def glottal_source(rng, voice, f0):
    """Sawtooth pulse train with shimmer, and pulsed aspiration noise."""
    phase = np.cumsum(f0 / SAMPLE_RATE)
    period = phase.astype(int)
    cycle_position = phase - period
    shimmer = 1.0 + rng.normal(0.0, voice.shimmer, period[-1] + 1)
    pulses = (1.0 - 2.0 * cycle_position) * shimmer[period]
    # Aspiration is strongest while the glottis is open (first half cycle).
    aspiration_gate = 0.4 + 0.6 * (cycle_position < 0.5)
    aspiration = rng.normal(0.0, 1.0, len(f0)) * aspiration_gate * voice.breathiness
    return pulses + aspiration


WINDOW = np.hanning(FFT_SIZE).astype(np.float32)


def stft(x):
    # Single precision halves FFT time and is far below 16-bit quantisation.
    frames = sliding_window_view(x.astype(np.float32), FFT_SIZE, axis=-1)[..., ::HOP, :]
    return scipy.fft.rfft(frames * WINDOW, axis=-1)


def istft(spectrum, n_samples):
    frames = scipy.fft.irfft(spectrum, n=FFT_SIZE, axis=-1) * WINDOW
    n_frames = len(frames)
    output = np.zeros((n_frames - 1) * HOP + FFT_SIZE, dtype=np.float32)
    weight = np.zeros_like(output)
    for start in range(0, FFT_SIZE, HOP):  # overlap-add one hop-sized stripe at a time
        span = slice(start, start + n_frames * HOP)
        output[span].reshape(n_frames, HOP)[:] += frames[:, start:start + HOP]
        weight[span].reshape(n_frames, HOP)[:] += WINDOW[start:start + HOP] ** 2
    return (output / np.maximum(weight, 1e-3))[:n_samples].astype(np.float64)


FREQS_HZ = np.fft.rfftfreq(FFT_SIZE, 1.0 / SAMPLE_RATE)


def vocal_tract_envelope(formants, voice):
    """|H(f)| per frame of a cascade of two-pole resonators (unity DC gain) plus source tilt."""
    radii = np.exp(-np.pi * BASE_BANDWIDTHS_HZ * voice.bandwidth_scale / SAMPLE_RATE)
    omega = 2.0 * np.pi * FREQS_HZ / SAMPLE_RATE
    cos_omega, sin_omega = np.cos(omega).astype(np.float32), np.sin(omega).astype(np.float32)
    octaves_above_100hz = np.log2(np.maximum(FREQS_HZ, 100.0) / 100.0)
    tilt = (10.0 ** (voice.tilt_db_per_octave * octaves_above_100hz / 20.0)).astype(np.float32)
    theta = (2.0 * np.pi / SAMPLE_RATE) * formants
    cos_theta, sin_theta = np.cos(theta).astype(np.float32), np.sin(theta).astype(np.float32)
    envelope = np.broadcast_to(tilt, (len(formants), len(FREQS_HZ)))
    for k, radius in enumerate(radii):
        # |1 - 2r cos(theta) z^-1 + r^2 z^-2|^2 split into its two conjugate poles:
        # (a - b cos(w - theta)) (a - b cos(w + theta)) = (a - b cw ct)^2 - (b sw st)^2
        a, b = np.float32(1.0 + radius ** 2), np.float32(2.0 * radius)
        in_phase = a - np.outer(b * cos_theta[:, k], cos_omega)
        quadrature = np.outer(b * sin_theta[:, k], sin_omega)
        dc_gain = (a - b * cos_theta[:, k])[:, None]
        envelope = envelope * (dc_gain / np.sqrt(in_phase ** 2 - quadrature ** 2))
    return envelope


def frication_shapes(voice):
    """Unit-power spectral shapes of the noise sources, shifted by vocal-tract size."""
    centres = FRICATIVE_BANDS[:, 0:1] * voice.formant_scale
    widths = FRICATIVE_BANDS[:, 1:2]
    shapes = np.exp(-0.5 * ((FREQS_HZ[None, :] - centres) / (0.5 * widths)) ** 2)
    shapes /= np.sqrt(np.mean(shapes ** 2, axis=1, keepdims=True))
    return shapes * 10.0 ** (FRICATIVE_BANDS[:, 2:3] / 20.0)


def synthesize_speech(rng, voice, n_samples):
    """Clean speech waveform, unit RMS over voiced stretches."""
    n_frames = (n_samples + FFT_SIZE) // HOP + 1
    padded_length = (n_frames - 1) * HOP + FFT_SIZE
    kind, phone = compose_sentence(rng, voice.tempo, n_frames)

    voicing_gain = np.where(kind == VOICED, VOICED_PHONES[phone, 3], 0.0)
    voicing_gain = smooth(np.where(kind == VOICED_FRICATIVE, 0.4, voicing_gain), 3)
    is_noise = np.isin(kind, (FRICATIVE, VOICED_FRICATIVE, STOP))
    noise_envelope = smooth(frication_shapes(voice)[np.where(is_noise, phone, 0)] * is_noise[:, None], 2)

    f0 = pitch_contour(rng, voice, kind, padded_length)
    frame_positions = np.arange(padded_length) / HOP - FFT_SIZE / HOP / 2
    voicing = np.interp(frame_positions, np.arange(n_frames), voicing_gain)
    glottal = glottal_source(rng, voice, f0) * voicing
    tract = vocal_tract_envelope(formant_tracks(kind, phone, voice), voice)
    glottal_spectrum, noise_spectrum = stft(np.stack([glottal, rng.normal(0.0, 1.0, padded_length)]))
    voiced_spectrum = glottal_spectrum * tract
    # White noise of unit power has E|X|^2 = sum(window^2) per bin: use that to
    # bring voicing to unit RMS where voiced, so noise levels read as dB re vowels.
    voiced_power = np.mean(np.abs(voiced_spectrum) ** 2) / np.sum(WINDOW ** 2)
    voiced_spectrum /= np.sqrt(max(voiced_power / max(np.mean(voicing ** 2), 1e-3), 1e-12))
    speech = istft(voiced_spectrum + noise_spectrum * noise_envelope, padded_length)
    return speech[FFT_SIZE // 2:FFT_SIZE // 2 + n_samples]


def coloured_noise(rng, slope, n_samples):
    fft_length = scipy.fft.next_fast_len(n_samples, real=True)  # odd lengths make the FFT crawl
    spectrum = scipy.fft.rfft(rng.standard_normal(fft_length, dtype=np.float32))
    freqs = np.fft.rfftfreq(fft_length, 1.0 / SAMPLE_RATE)
    spectrum *= (np.maximum(freqs, 20.0) ** (-slope / 2.0)).astype(np.float32)
    noise = scipy.fft.irfft(spectrum, n=fft_length)[:n_samples].astype(np.float64)
    return noise / np.sqrt(np.mean(noise ** 2))


def record(rng, speech, channel, snr_range_db):
    """Channel, background noise at a random SNR, then a random level."""
    speech = signal.lfilter(channel.b, channel.a, speech)
    speech_power = np.mean(speech ** 2)
    snr_db = rng.uniform(*snr_range_db)
    # Background noise changes from utterance to utterance, even within a clip. Its colour
    # (power ~ 1 / f**slope: 0 white, 1 pink, 2 brown) is drawn here rather than per clip:
    # shared by all of a training speaker's utterances, it would be a shortcut to identity.
    noise = coloured_noise(rng, rng.uniform(0.0, 2.0), len(speech))
    noisy = speech + noise * np.sqrt(speech_power * 10.0 ** (-snr_db / 10.0))
    level_db = -26.0 + rng.uniform(-6.0, 6.0)
    noisy *= 10.0 ** (level_db / 20.0) / np.sqrt(np.mean(noisy ** 2))
    peak = np.max(np.abs(noisy))
    if peak > 0.99:  # rare loud utterance: limit rather than wrap around
        noisy *= 0.99 / peak
    return np.round(noisy * 32767.0).astype(np.int16)
