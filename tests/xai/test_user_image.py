"""`glasses explain`'s figure: the methods it draws and the class it names."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from glasses.config import resolve_config
from glasses.models.cnn import CNN
from glasses.xai.methods import MAIN
from glasses.xai.user_image import explained_image_figure, methods_named


def test_all_means_the_main_methods_and_dashes_name_one():
    assert methods_named("all") == MAIN
    assert methods_named("ig-captum") == ("ig_captum",)


def test_the_figure_shows_each_method_for_the_predicted_class():
    torch.manual_seed(0)
    model = CNN(resolve_config("tiny").cnn, 32).eval()
    pixels = np.random.default_rng(0).random((32, 32, 3), dtype=np.float32)
    predicted = int(model(torch.from_numpy(pixels.transpose(2, 0, 1)[None].copy())).argmax())
    figure = explained_image_figure(model, pixels, ("ig", "ig_captum"), "glasses-cnn/1")
    assert len(figure.get_axes()) == 2 + 2  # the image, two maps, the colour bar
    name = ("no glasses", "glasses")[predicted]
    assert figure.texts[0].get_text() == f"glasses-cnn/1: {name}"
    plt.close(figure)
