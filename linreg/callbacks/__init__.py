"""Callbacks that make a run teach: parameters, the gap to the optimum, the fit picture, hparams."""

from linreg.callbacks.fit_plot import FitPlot, fit_figure
from linreg.callbacks.hparams import HParamsMetrics
from linreg.callbacks.optimum import OptimumGap
from linreg.callbacks.parameters import ParameterLogger

__all__ = ["FitPlot", "HParamsMetrics", "OptimumGap", "ParameterLogger", "fit_figure"]
