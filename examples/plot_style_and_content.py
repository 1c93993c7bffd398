"""
==============================================
Style and content: a VAE conditioned on labels
==============================================

A *conditional* VAE is told part of what each sample is. Here the digits of
scikit-learn are given their label as a condition: the decoder models
``p(x | z, label)`` and the encoder ``q(z | x, label)``. The label is
*content* the code no longer needs to carry, and the KL term pushes out of
``z`` whatever the label already says, so ``z`` keeps the rest, the *style*:
slant, stroke width, size.

Conditions are ordinary columns of ``X``, named by ``condition_features``:
``transform`` returns the codes followed by the conditions, and
``inverse_transform`` takes that layout back. Swapping the condition columns
of a code before inverting it writes the same style as another digit, a
counterfactual: "this 4, written as a 7".
"""

# %%
# Digits with their label as ten one-hot condition columns
# ---------------------------------------------------------
# The 64 pixels are scaled to [0, 1] (a Bernoulli likelihood); columns 64 to
# 73 hold the one-hot label. A few thousand optimisation steps on the MLP take
# a few seconds on 2 CPU cores.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from sklearn_betavae import BetaVAE

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.3, random_state=0)


def with_label(images, labels):
    return np.hstack([images, np.eye(10)[labels]])


labels = list(range(64, 74))
vae = BetaVAE(n_components=4, max_epochs=100, condition_features=labels, random_state=0)
vae.fit(with_label(X_train, y_train))
print(f"trained {vae.n_iter_} epochs; held-out ELBO "
      f"{vae.score(with_label(X_test, y_test)):.1f} nats per digit")
print("output columns:", list(vae.get_feature_names_out()))

# %%
# Does the model draw the digit it is asked for?
# ----------------------------------------------
# A classifier trained on real digits labels samples drawn under each of the
# ten conditions. The decoded pixels are the modelled columns of the samples
# (``modelled_indices_``); the condition columns hold the requested label.
classifier = LogisticRegression(max_iter=2000).fit(X_train, y_train)
print(f"classifier accuracy on real test digits: {classifier.score(X_test, y_test):.3f}")
requested = np.repeat(np.arange(10), 50)
samples = vae.sample(500, random_state=0, conditions=np.eye(10)[requested])
pixels = samples[:, vae.modelled_indices_]
print(f"samples recognised as the requested digit: "
      f"{np.mean(classifier.predict(pixels) == requested):.3f}")

# %%
# One style, ten conditions
# -------------------------
# Each row takes one test digit, encodes it with its own label, and decodes
# its code under each of the ten labels in turn: the style stays, the content
# changes. The first column is the original digit.
codes = vae.transform(with_label(X_test[:6], y_test[:6]))
fig, axes = plt.subplots(6, 11, figsize=(8.5, 5))
for row, code in enumerate(codes):
    axes[row, 0].imshow(X_test[row].reshape(8, 8), cmap="gray_r")
    counterfactuals = np.tile(code, (10, 1))
    counterfactuals[:, 4:] = np.eye(10)  # replace the condition columns
    written = vae.inverse_transform(counterfactuals)[:, vae.modelled_indices_]
    for digit in range(10):
        axes[row, digit + 1].imshow(written[digit].reshape(8, 8), cmap="gray_r")
for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
axes[0, 0].set_title("original", fontsize="small")
for digit in range(10):
    axes[0, digit + 1].set_title(str(digit), fontsize="small")
fig.suptitle("Each row: one digit's style written as every digit")
fig.tight_layout()
plt.show()

# %%
# Style without content
# ---------------------
# Codes drawn from the prior, each rendered under all ten labels: a column of
# the figure is one label, a row one drawn style.
styles = np.random.RandomState(1).randn(5, 4)
fig, axes = plt.subplots(5, 10, figsize=(7.5, 4))
for row, style in enumerate(styles):
    rows = np.hstack([np.tile(style, (10, 1)), np.eye(10)])
    written = vae.inverse_transform(rows)[:, vae.modelled_indices_]
    for digit in range(10):
        axes[row, digit].imshow(written[digit].reshape(8, 8), cmap="gray_r")
        axes[row, digit].set_xticks([])
        axes[row, digit].set_yticks([])
fig.suptitle("Five styles drawn from the prior, each under ten labels")
fig.tight_layout()
plt.show()

# %%
# How much of the label is left in the code?
# ------------------------------------------
# Nothing forces ``z`` to forget the label; the KL term only makes it pay for
# what it keeps. A classifier trained on the codes alone (without the
# condition columns) shows how much of the label ``z`` still carries: well
# below the accuracy on the pixels means the content went to the condition.
code_train = vae.transform(with_label(X_train, y_train))[:, :4]
code_test = vae.transform(with_label(X_test, y_test))[:, :4]
from_codes = LogisticRegression(max_iter=2000).fit(code_train, y_train)
print(f"label predicted from the 4 codes alone: {from_codes.score(code_test, y_test):.3f} "
      "(chance: 0.1)")
