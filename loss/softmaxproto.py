import loss.angleproto as angleproto
import loss.softmax as softmax
from loss.base import SpeakerLoss


class LossFunction(SpeakerLoss):
    """The 2021 trainer's softmax + angular prototypical loss: each speaker's pair of utterances
    is classified over the training speakers (softmax) and matched against the other speakers'
    (angleproto), the two losses summed. The reported metric is the softmax top-1 accuracy.

    Both halves are those plugins' own classes, under the 2021 checkpoint names `softmax.fc` and
    `angleproto.w/b`. Embeddings reach it unnormalised (the softmax needs their length; the
    cosine of angleproto ignores it) and trials are scored on normalised ones."""

    train_normalize = False
    test_normalize = True
    utterances_per_speaker = 2  # angleproto's query and prototype, as the 2021 code asserted
    classifies_speakers = True

    def __init__(self, nOut=512, nClasses=5994, init_w=10.0, init_b=-5.0, **kwargs):
        super().__init__()
        # Created in this order, as in the 2021 code, so a seeded head starts from its weights.
        self.softmax = softmax.LossFunction(nOut=nOut, nClasses=nClasses)
        self.angleproto = angleproto.LossFunction(init_w=init_w, init_b=init_b)

    def forward_fp32(self, x, label):
        # x: (speakers, 2, nOut); each utterance carries its speaker's label.
        softmax_loss, accuracy = self.softmax(x.reshape(-1, x.size(-1)), label.repeat_interleave(2))
        proto_loss, _ = self.angleproto(x, None)
        return softmax_loss + proto_loss, accuracy
