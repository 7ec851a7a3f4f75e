"""linreg's callbacks: a run that teaches, stops cleanly and writes predictions."""

from linreg.callbacks.convergence import Convergence
from linreg.callbacks.divergence import DivergenceGuard, TrainingDiverged
from linreg.callbacks.fit_plot import FitPlot, fit_figure
from linreg.callbacks.graceful_stop import GracefulStop
from linreg.callbacks.hparams import HParamsMetrics
from linreg.callbacks.optimum import OptimumGap
from linreg.callbacks.parameters import ParameterLogger
from linreg.callbacks.predictions import PredictionWriter

__all__ = [
    "Convergence",
    "DivergenceGuard",
    "FitPlot",
    "GracefulStop",
    "HParamsMetrics",
    "OptimumGap",
    "ParameterLogger",
    "PredictionWriter",
    "TrainingDiverged",
    "fit_figure",
]
