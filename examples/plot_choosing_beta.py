"""
===================================================
Choosing beta: the rate-distortion trade-off by CV
===================================================

``beta`` weighs the KL term of the objective, ``KL(q(z|x) || p(z))``, the
*rate* (how many nats the code keeps about each input), against the
*distortion* ``-E[log p(x|z)]`` (how badly the input is reconstructed). A
larger beta buys a lower rate with a higher distortion; the ELBO is
``-(rate + distortion)``.

The scorers of :mod:`sklearn_betavae.metrics` put the three quantities in the
``cv_results_`` of a :class:`~sklearn.model_selection.GridSearchCV`, measured
on the held-out folds, and
:func:`~sklearn_betavae.plotting.plot_rate_distortion` draws the curve the
search traces. The grid also tries free bits, which keep each latent
dimension above a minimum rate.
"""

# %%
# A multi-metric search
# ---------------------
# ``rate_scorer`` reports the mean rate as is; ``reconstruction_scorer``
# returns *minus* the distortion and ``elbo_scorer`` the ELBO, so that higher
# is better for both, as scikit-learn's ``neg_*`` scorers. The refit
# criterion is the held-out ELBO. Budgets are small (3 folds, 20 epochs) so
# that the 30 fits take about 20 s on 2 CPU cores; ``verbose=2`` prints a line
# with the time of each fit as it ends. The largest betas leave most latent
# dimensions unused, which the rate below shows; their
# ``PosteriorCollapseWarning`` is silenced to keep the log readable.
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, KFold

from sklearn_betavae import BetaVAE
from sklearn_betavae.exceptions import PosteriorCollapseWarning
from sklearn_betavae.metrics import elbo_scorer, rate_scorer, reconstruction_scorer
from sklearn_betavae.plotting import plot_rate_distortion, plot_training_history

warnings.filterwarnings("ignore", category=PosteriorCollapseWarning)
X = load_digits().data / 16.0

scoring = {"elbo": elbo_scorer, "rate": rate_scorer, "reconstruction": reconstruction_scorer}
param_grid = {"beta": [0.5, 1.0, 2.0, 4.0, 8.0], "free_bits": [0.0, 0.5]}
search = GridSearchCV(
    BetaVAE(n_components=8, max_epochs=20, anneal_steps=200, random_state=0),
    param_grid,
    scoring=scoring,
    refit="elbo",
    cv=KFold(n_splits=3, shuffle=True, random_state=0),
    verbose=2,
)
search.fit(X)
results = search.cv_results_
print("best parameters (held-out ELBO):", search.best_params_)
for params, elbo, rate, reconstruction in zip(
    results["params"],
    results["mean_test_elbo"],
    results["mean_test_rate"],
    results["mean_test_reconstruction"],
):
    print(
        f"beta={params['beta']:<4g} free_bits={params['free_bits']:<4g} "
        f"ELBO {elbo:8.2f}  rate {rate:6.2f}  distortion {-reconstruction:7.2f}"
    )

# %%
# The rate-distortion curve
# -------------------------
# Passing ``cv_results_`` directly plots every candidate, the distortion being
# minus the reconstruction score. Here we draw one curve per value of
# ``free_bits`` by selecting the candidates with numpy masks. Going up the
# curve, beta grows: the models keep fewer nats about each digit and
# reconstruct them worse, until the largest betas collapse to a rate of zero
# (every digit gets the same code). The dotted line of slope -1 through the
# best candidate joins models of equal ELBO: every point above it has a
# lower ELBO. The best ELBO is found at beta = 1 or below: training with a
# larger beta accepts up to beta nats of extra distortion per nat of rate
# saved, where the ELBO counts both equally.
#
# Free bits hold the rate up at large beta, close to the floor of
# 8 x 0.5 = 4 nats: there they beat the collapsed models without free bits
# in ELBO, while at small beta the floor mostly adds noise to dimensions the
# model would rather leave unused, and costs a little.
fig, ax = plt.subplots(figsize=(7, 5), layout="constrained")
free_bits = np.asarray(results["param_free_bits"], dtype=float)
beta = np.asarray(results["param_beta"], dtype=float)
for value in np.unique(free_bits):
    mask = free_bits == value
    plot_rate_distortion(
        results["mean_test_rate"][mask],
        -results["mean_test_reconstruction"][mask],
        labels=[f"beta={b:g}" for b in beta[mask]],
        connect=True,
        label=f"free_bits={value:g}",
        ax=ax,
    )
best = search.best_index_
best_rate = results["mean_test_rate"][best]
best_distortion = -results["mean_test_reconstruction"][best]
ax.plot(best_rate, best_distortion, "k*", markersize=14, label="best ELBO")
rates = np.array(ax.get_xlim())
ax.plot(rates, best_rate + best_distortion - rates, ":", color="0.5", label="equal ELBO")
ax.set_xlim(rates)
ax.legend()
ax.set_title("Held-out rate and distortion of the candidates")
plt.show()

# %%
# The same from ``cv_results_`` in one call
# -----------------------------------------
# Without masks, each point is labelled with the parameters that vary and
# carries the standard deviation over the folds as error bars.
fig, ax = plt.subplots(figsize=(9, 6), layout="constrained")
plot_rate_distortion(cv_results=results, ax=ax)
ax.set_title("All candidates, with fold-to-fold spread")
plt.show()

# %%
# The selected model's training
# -----------------------------
# ``refit="elbo"`` refits the best candidate on all the data. Its history
# shows the rate rising while beta is annealed from 0 over the first 200
# steps, and which latent dimensions carry information.
plot_training_history(search.best_estimator_)
plt.show()
