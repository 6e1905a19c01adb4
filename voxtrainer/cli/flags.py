"""The command line's flags, declared once: one table of groups, each flag as argparse takes it.
The seed's flags keep their names, meanings and defaults; `parse_args` applies --config (the command
line wins) and the defaults that depend on other flags. `explicit_flags` tells which flags the user
gave (command line or --config), so that a flag the chosen model, loss, optimizer or scheduler does
not take can be named in a warning instead of vanishing."""

import argparse

from voxtrainer.config import OneLineParser, read_config, real_number, truth_value, whole_number
from voxtrainer.precision import COMPILE_MODES, MEMORY_FORMATS, PRECISIONS, SWITCHES
from voxtrainer.scoring.score_norm import METHODS as SCORE_NORMS

DEFAULT_NCLASSES = 5994  # VoxCeleb2 dev speakers: the seed's --nSpeakers default
DEFAULT_NPERSPEAKER = 2
MAX_CROP_FRAMES = 360000  # an hour: longer than any utterance of a speaker-verification list


def flag(*names, **options):
    return names, options


GROUPS = (
    (None, (
        flag("--config", type=str, default=None, help="YAML file of flag values; the command line wins"),
    )),
    ('data', (
        flag("--max_frames", type=whole_number(0, MAX_CROP_FRAMES), default=200,
             help="Frames (10 ms) per training crop"),
        flag("--eval_frames", type=whole_number(0, MAX_CROP_FRAMES), default=None,
             help="Frames per evaluation crop, 0 = whole file (default: --max_frames, as the seed)"),
        flag("--batch_size", type=whole_number(1), default=200, help="Speakers (groups) per batch"),
        flag("--max_seg_per_spk", type=whole_number(1), default=100, help="Maximum utterances per speaker per epoch"),
        flag("--nDataLoaderThread", type=whole_number(0), default=5, help="Audio-loading worker processes"),
        flag("--train_list", type=str, default="", help="Train list: 'speaker path' per line"),
        flag("--test_list", type=str, default="", help="Test list: 'label enrol test' per line"),
        flag("--train_path", type=str, default="voxceleb2", help="Root of the train list's paths"),
        flag("--test_path", type=str, default="voxceleb1", help="Root of the test list's paths"),
    )),
    ('training', (
        flag("--test_interval", type=whole_number(1), default=10,
             help="Evaluate, decay the LR and save every N epochs"),
        flag("--max_epoch", type=whole_number(1), default=500, help="Last epoch"),
        flag("--trainfunc", type=str, default="", help="Loss: a module name in loss/"),
        flag("--optimizer", type=str, default="adam", help="Optimizer: a module name in optimizer/"),
        flag("--scheduler", type=str, default="steplr", help="LR schedule: a module name in scheduler/"),
        flag("--lr", type=real_number(0), default=0.001, help="Learning rate"),
        flag("--lr_decay", type=real_number(0), default=0.95, help="LR factor every --test_interval epochs"),
        flag("--weight_decay", type=real_number(0), default=None, help="Weight decay (default: the optimizer's)"),
        flag("--hard_prob", type=real_number(0, 1), default=0.5,
             help="Hard negative probability (triplet/contrastive)"),
        flag("--hard_rank", type=whole_number(), default=10, help="Hard negative rank (triplet/contrastive)"),
        flag("--margin", type=real_number(), default=1, help="Loss margin"),
        flag("--scale", type=real_number(0, above=True), default=15, help="Loss scale (AM/AAM-softmax)"),
        flag("--nSpeakers", type=whole_number(1), default=None,
             help="As the seed: softmax classes for softmax-family losses (default %d), utterances "
             "per speaker per batch for metric losses (default %d)" % (DEFAULT_NCLASSES,
             DEFAULT_NPERSPEAKER)),
        flag("--nClasses", type=whole_number(1), default=None, help="Softmax classes (wins over --nSpeakers)"),
        flag("--nPerSpeaker", type=whole_number(1), default=None,
             help="Utterances per speaker per batch for metric losses (wins over --nSpeakers)"),
        flag("--seed", type=whole_number(0, 2 ** 32 - 1), default=0, help="Seed of weights, sampling and crops"),
        flag("--mixedprec", action="store_true", help="fp16 autocast on CUDA, bf16 on CPU"),
        flag("--distributed", action="store_true", help="DistributedDataParallel under torchrun"),
        flag("--eval_untrained", action="store_true",
             help="Also evaluate the model before the first epoch, to compare with the trained EER"),
    )),
    ('models and outputs', (
        flag("--initial_model", type=str, default="",
             help="Weights to start from / to evaluate: a file, or an http(s) URL downloaded once into "
             "--model_cache"),
        flag("--save_path", type=str, default="data/exp1", help="Folder for models and results"),
        flag("--eval", dest="eval", action="store_true", help="Only score --test_list and print the EER"),
        flag("--device", type=str, default="auto", choices=["auto", "cpu", "cuda"], help="Compute device"),
    )),
    ('model', (
        flag("--model", type=str, default="", help="Network: a module name in models/"),
        flag("--encoder_type", "--encoder", dest="encoder_type", type=str, default="SAP",
             help="Temporal pooling: SAP, TAP, MAX or ASP (ResNetSE34V2: SAP or ASP; WeSpeaker models: their own)"),
        flag("--nOut", type=whole_number(1), default=None,
             help="Embedding size (default: the model's own, e.g. 256 for ResNet34, else 512)"),
    )),
    ('2021 trainer', (
        flag("--n_mels", type=whole_number(8), default=40,
             help="Mel bands of the log-mel front end (ResNetSE34L, ResNetSE34V2)"),
        flag("--log_input", type=truth_value, nargs="?", const=True, default=True,
             help="Take the log of the mel bands: bare --log_input or --log_input True/False"),
        flag("--protocol", type=str, default=None, choices=["2020", "2021"],
             help="Audio protocol for training, evaluation and extraction: 2020 int16 values "
             "and zero padding, 2021 floats and wrap padding (default: the model's, "
             "2021 for ResNetSE34V2, else 2020)"),
    )),
    ('training data (recipes; all off by default)', (
        flag("--speed_perturb", action="store_true",
             help="Play each training group at 0.9, 1.0 or 1.1 times its speed, each speed of a speaker "
             "its own class (WeSpeaker's): softmax-family heads get 3 x --nClasses classes"),
        flag("--dither", type=real_number(0), default=0.0,
             help="Add Gaussian noise of this amplitude (int16 units, Kaldi's dither; WeSpeaker trains "
             "with 1.0) to every training crop; evaluation is never dithered"),
        flag("--min_train_seconds", type=real_number(0), default=None,
             help="Leave train-list utterances shorter than this out (WeSpeaker's recipe: 1.0)"),
        flag("--max_train_seconds", type=real_number(0), default=None,
             help="Leave train-list utterances longer than this out"),
        flag("--short_crop_padding", type=str, default=None, choices=["zero", "repeat"],
             help="Fill training crops of files shorter than a crop with zeros on both sides or by "
             "repeating the file from its start, as WeSpeaker (default: the protocol's, zero "
             "for 2020, repeat for 2021)"),
    )),
    ('your own data (dataprep.py --make_lists --from_folder writes the lists)', (
        flag("--model_cache", type=str, default="",
             help="Folder for --initial_model URLs' downloads (default: $XDG_CACHE_HOME/voxtrainer, "
             "else ~/.cache/voxtrainer)"),
        flag("--initial_model_sha256", type=str, default="",
             help="sha256 that --initial_model must have (a mismatching download is removed)"),
    )),
    ('beyond the original (all off by default)', (
        flag("--compile", action="store_true",
             help="Train through torch.compile: a slow first step, then faster steps whose rounding "
             "differs from eager; eager again, with a warning, where compilation fails"),
        flag("--augment", action="store_true",
             help="Augment each training crop with MUSAN noise, babble or music, or a simulated RIR"),
        flag("--musan_path", type=str, default="data/musan_split",
             help="MUSAN in 5 s pieces (noise/, speech/, music/), as dataprep.py --augment writes it"),
        flag("--rir_path", type=str, default="data/RIRS_NOISES/simulated_rirs",
             help="Simulated room impulse responses, as dataprep.py --augment writes them"),
        flag("--extract", action="store_true",
             help="Only write one embedding per file of --extract_list to --extract_out"),
        flag("--extract_list", type=str, default="",
             help="Audio files to embed: one path per line, relative to --test_path"),
        flag("--extract_out", type=str, default="", help=".npz file that --extract writes"),
        flag("--extract_crops", action="store_true",
             help="--extract also stores every eval crop's embedding"),
        flag("--score_norm", type=str, default="none", choices=["none"] + sorted(SCORE_NORMS),
             help="--eval also prints the EER after cohort score normalisation"),
        flag("--cohort_list", type=str, default="",
             help="Score-norm cohort: one path per line (or a train list), relative to --cohort_path"),
        flag("--cohort_path", type=str, default="", help="Root of the cohort list's paths"),
        flag("--top_k", type=whole_number(1), default=300, help="AS-norm: highest cohort scores kept per side"),
        flag("--export", type=str, default=None, metavar="{onnx,torchscript}",
             help="Only write the embedding network of --initial_model to --export_out, as ONNX or "
             "TorchScript (voxtrainer.inference.export.FORMATS)"),
        flag("--export_out", type=str, default="", help="File that --export writes"),
        flag("--average_last", type=whole_number(), default=0,
             help="Only average the last N models of --save_path/model into one .model"),
        flag("--eval_precision", type=str, default="fp32", choices=["fp32", "bf16", "fp16"],
             help="Precision of every embedding (evaluation, validation, --extract, cohorts): bf16 "
             "autocast is faster where native (AVX-512 BF16/AMX CPUs, recent GPUs; refused "
             "elsewhere) but changes the scores; fp16 autocast: CUDA only"),
    )),
    ('fine-tuning, calibration, verification (all off by default)', (
        flag("--finetune", action="store_true",
             help="Train from --initial_model's embedding network under a new loss head sized for this "
             "data (any --trainfunc; --nClasses defaults to the train list's speakers)"),
        flag("--freeze_epochs", type=whole_number(0), default=0,
             help="With --finetune: the embedding network's weights and BatchNorm statistics stay fixed "
             "for the first N epochs, while the new head trains"),
        flag("--calibrate", action="store_true",
             help="--eval also fits score-to-log-likelihood-ratio calibration on the list, writes it "
             "beside the model (<model>.calibration.json) and prints Cllr and min-Cllr"),
        flag("--verify", type=str, nargs=2, metavar=("A.wav", "B.wav"), default=None,
             help="Only score one pair of audio files with --initial_model (and its calibration, if any)"),
        flag("--verify_list", type=str, default="",
             help="Only score each 'A B' line of this file (paths relative to --test_path), writing "
             "--save_path/result/verify_results.txt"),
        flag("--prior", type=real_number(0, 1), default=0.5,
             help="Prior probability of the same speaker, for --verify's calibrated probability and "
             "decision (strictly between 0 and 1)"),
    )),
    ("modern recipes (WeSpeaker's losses and schedules; all off by default)", (
        flag("--margin_start_epoch", type=whole_number(0), default=0,
             help="Margin schedule (aamsoftmax, amsoftmax): --initial_margin until this epoch, rising "
             "to --margin by --margin_end_epoch, set before every step; 0 = off (fixed --margin)"),
        flag("--margin_end_epoch", type=whole_number(1), default=None,
             help="First epoch at the full --margin (needed with --margin_start_epoch)"),
        flag("--initial_margin", type=real_number(), default=0.0, help="Margin before the schedule rises"),
        flag("--margin_rise", type=str, default="exp", choices=["exp", "linear"],
             help="Shape of the margin's rise: WeSpeaker's exponential (fast, then levelling off) or linear"),
        flag("--subcenters", type=whole_number(1), default=1,
             help="aamsoftmax: centres per class, a class's cosine being its closest centre's"),
        flag("--intertopk", type=whole_number(0), default=0,
             help="aamsoftmax: the K hardest negative classes get the penalty cos(theta - "
             "--intertopk_margin); 0 = off"),
        flag("--intertopk_margin", type=real_number(0), default=0.06,
             help="Inter-top-k margin at the full --margin (scaled with the margin in force)"),
        flag("--final_lr", type=real_number(0), default=5e-5,
             help="--scheduler warmup_exp: LR after --max_epoch epochs (decaying exponentially from --lr)"),
        flag("--warmup_epochs", type=real_number(0), default=0,
             help="--scheduler warmup_exp: epochs of linear warm-up from LR 0"),
        flag("--lr_reference_batch", type=whole_number(0), default=0,
             help="--scheduler warmup_exp: scale the LR by GPUs x utterances per batch / this, as "
             "WeSpeaker does with 64; 0 = off"),
        flag("--momentum", type=real_number(0), default=None,
             help="--optimizer sgd: momentum (default: the original's 0.9)"),
        flag("--nesterov", action="store_true", help="--optimizer sgd: Nesterov momentum"),
    )),
    ('WeSpeaker models (ResNet34, ECAPA_TDNN, ...; --initial_model takes their .pt)', (
        flag("--channels", type=whole_number(8), default=512, help="ECAPA_TDNN channels: 512 or 1024"),
        flag("--variant", type=str, default=None,
             help="the size of a model family (ERes2Net, ReDimNet2); default: the model's own"),
        flag("--score_mean_from", type=str, default="",
             help="--eval scores by cosine after subtracting this mean embedding, as WeSpeaker: an "
             ".npz from --extract (e.g. of the training set) or a .npy vector"),
    )),
    ("speed (the arithmetic stays fp32 unless --precision says otherwise)", (
        flag("--precision", type=str, default=None, choices=PRECISIONS,
             help="Training arithmetic: fp32 (default: the seed's numbers; TF32 off on CUDA), tf32 "
             "(CUDA), bf16 (autocast), fp16 (CUDA: autocast + loss scaling, as --mixedprec)"),
        flag("--memory_format", type=str, default="auto", choices=MEMORY_FORMATS,
             help="Layout of weights and activations; auto: channels_last on the CPU, the model "
             "file's measured CUDA_MEMORY_FORMAT on CUDA"),
        flag("--cudnn_benchmark", type=str, default="auto", choices=SWITCHES,
             help="cuDNN's algorithm search (CUDA); auto: the model file's measured CUDNN_BENCHMARK "
             "(off where it declares none: it can cost much GPU memory)"),
        flag("--compile_mode", type=str, default="default", choices=COMPILE_MODES,
             help="torch.compile's mode with --compile; reduce-overhead: CUDA graphs of the step"),
    )),
)

# The options each kind of plugin receives by keyword: a flag of these given explicitly, and not a
# named parameter of the chosen plugin, is reported (voxtrainer.cli.build.warn_unused_options). The
# modern recipes' --subcenters, --intertopk, --momentum, --nesterov and --lr_reference_batch are
# refused outright where they do not apply (voxtrainer.cli.build.modern_options).
PLUGIN_OPTIONS = {
    "models": ("encoder_type", "n_mels", "log_input", "channels", "variant"),
    "loss": ("margin", "scale", "hard_rank", "hard_prob", "intertopk_margin"),
    "optimizer": ("weight_decay",),
    "scheduler": ("lr_decay", "final_lr", "warmup_epochs"),
}


def build_parser():
    parser = OneLineParser(description="SpeakerNet: train speaker embeddings, score verification trials",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for title, flags in GROUPS:
        group = parser.add_argument_group(title) if title else parser
        for names, options in flags:
            group.add_argument(*names, **options)
    return parser


def parse_args(argv=None):
    parser = build_parser()
    early, _ = parser.parse_known_args(argv)
    if early.config:
        parser.set_defaults(**read_config(early.config, parser))
    args = parser.parse_args(argv)
    if args.eval_frames is None:
        args.eval_frames = args.max_frames
    if args.nOut is None:
        args.nOut = default_nOut(args.model)
    return args


def explicit_flags(argv=None):
    """The destinations of the flags given on the command line or in --config (not defaults)."""
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    given, _ = parser.parse_known_args(argv)
    explicit = set(vars(given))
    if getattr(given, "config", None):
        explicit |= set(read_config(given.config, build_parser()))
    return explicit


def default_nOut(model):
    """The model's own embedding size where it declares one (WeSpeaker's models), else the seed's 512."""
    if not model:
        return 512
    from voxtrainer.plugins import load_plugin
    return getattr(load_plugin("models", model), "default_nOut", 512)
