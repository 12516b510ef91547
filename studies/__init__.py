from studies._diagnosis import LABELS, Diagnosis, Thresholds, diagnose

__all__ = ["LABELS", "Diagnosis", "Thresholds", "diagnose"]
