"""Pre-encoded media: sample files lkload generates itself with PyAV on first use, and
loops that hand their packets out in real time without encoding anything per frame."""

from lkload.media.loop import EncodedSample, PacketLoop, load_sample
from lkload.media.samples import SampleSpec, sample_path

__all__ = ["EncodedSample", "PacketLoop", "SampleSpec", "load_sample", "sample_path"]
