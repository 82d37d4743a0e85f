from tests.net.fixtures import corpus_frames, corpus_merged, corpus_truth, eth_frames

__all__ = ["corpus_frames", "corpus_merged", "corpus_truth", "eth_frames"]
