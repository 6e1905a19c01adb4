"""Scoring and evaluation: the one trial score, the EER and minDCF as the 2020 trainer computes
them, cohort score normalisation, calibration to log-likelihood ratios, and the figures and files
of an evaluation. It receives embeddings from voxtrainer.inference and hands back numbers."""
