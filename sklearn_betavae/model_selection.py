"""Model selection that does not depend on one lucky seed.

:class:`UDRSelector` trains one setting of a VAE from several seeds and keeps
the model the others agree with most (Unsupervised Disentanglement Ranking,
Duan et al. 2020). It uses its estimator only through the scikit-learn API
(``clone``, ``set_params``, ``fit``, ``transform``) and the ``kl_per_dim``
method of the package's VAEs; the score itself is
:func:`sklearn_betavae.metrics.udr_score`.
"""

from numbers import Integral, Real

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import (
    BaseEstimator,
    MetaEstimatorMixin,
    TransformerMixin,
    _fit_context,
    clone,
)
from sklearn.utils import check_random_state, get_tags
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import (
    _check_feature_names_in,
    _estimator_has,
    check_is_fitted,
    validate_data,
)

from ._base import _DOCS_URL
from .metrics import udr_score

__all__ = ["UDRSelector"]


def _fit_member(estimator, X):
    """Fit one seed's model (a joblib task)."""
    return estimator.fit(X)


def _best_has(attr):
    """Delegate ``attr`` to the selected model, or before fit to the template."""
    return _estimator_has(attr, delegates=("best_estimator_", "estimator"))


class UDRSelector(MetaEstimatorMixin, TransformerMixin, BaseEstimator):
    """Train a VAE from several seeds and keep the one the others agree with most.

    Which disentanglement a VAE reaches depends on its random seed as much as
    on its hyperparameters (Locatello et al. 2019). UDR (Duan et al. 2020)
    ranks the seeds of one setting without labels: models that disentangle
    learn the same factors, each on its own dimension, while entangled
    models mix them each in their own way, so the model whose code agrees
    most with the others' (up to permutation and sign) is kept.
    ``UDRSelector`` fits ``n_seeds`` clones of ``estimator`` that differ only
    in ``random_state``, in parallel through joblib, scores them with
    :func:`~sklearn_betavae.metrics.udr_score` on the training data and
    delegates ``transform``, ``inverse_transform``, ``sample`` and
    ``score_samples`` to the best one. :meth:`score` is the mean UDR of all
    members on the given data, so that a
    :class:`~sklearn.model_selection.GridSearchCV` over
    ``estimator__<parameter>`` chooses a setting, e.g. beta, by the
    agreement of its seeds on held-out data, without labels.

    Parameters
    ----------
    estimator : estimator object
        The model to train, with a ``random_state`` parameter, ``transform``
        (posterior means) and ``kl_per_dim`` (per-dimension KL from the
        prior), e.g. :class:`~sklearn_betavae.BetaVAE`. It is cloned, never
        fitted itself.
    n_seeds : int, default=5
        Number of models trained, each from its own seed (at least 2).
    n_jobs : int, default=None
        Number of models trained in parallel by :class:`joblib.Parallel`.
        ``None`` means 1 unless in a :func:`joblib.parallel_backend`
        context (such as ``"dask"``); ``-1`` means all processors.
    random_state : int, RandomState instance or None, default=None
        Draws the seeds of the members (passed as their ``random_state``).
        An int gives the same members at every fit.
    correlation : {"spearman", "lasso"}, default="spearman"
        How :func:`~sklearn_betavae.metrics.udr_score` compares two models.
    kl_threshold : float, default=0.01
        Mean KL in nats at or below which a latent dimension counts as
        collapsed and is left out of the comparison.

    Attributes
    ----------
    estimators_ : list of estimators
        The fitted members, in the order of their seeds.
    udr_scores_ : ndarray of shape (n_seeds,)
        UDR of each member on the training data.
    best_index_ : int
        Index of the member with the highest UDR (the first one on ties).
    best_estimator_ : estimator
        ``estimators_[best_index_]``, to which the transforms are delegated.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit``. Defined only when ``X``
        has feature names that are all strings.

    See Also
    --------
    sklearn_betavae.metrics.udr_score : The score of each member.
    sklearn.model_selection.GridSearchCV : Chooses hyperparameters by :meth:`score`.

    References
    ----------
    Duan, S. et al. (2020). Unsupervised Model Selection for Variational
    Disentangled Representation Learning. ICLR.

    Locatello, F. et al. (2019). Challenging Common Assumptions in the
    Unsupervised Learning of Disentangled Representations. ICML.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_betavae import BetaVAE
    >>> from sklearn_betavae.model_selection import UDRSelector
    >>> X = load_digits().data[:200] / 16
    >>> vae = BetaVAE(n_components=3, hidden_layer_sizes=(32,), max_epochs=5,
    ...               learning_rate=3e-3)
    >>> selector = UDRSelector(vae, n_seeds=3, random_state=0).fit(X)
    >>> selector.udr_scores_.shape
    (3,)
    >>> selector.best_estimator_ is selector.estimators_[selector.best_index_]
    True
    >>> selector.transform(X).shape
    (200, 3)
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "transform", "kl_per_dim"])],
        "n_seeds": [Interval(Integral, 2, None, closed="left")],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
        "correlation": [StrOptions({"spearman", "lasso"})],
        "kl_threshold": [Interval(Real, 0, None, closed="left")],
    }
    # The HTML representation links to the estimator's API page.
    _doc_link_module = "sklearn_betavae"
    _doc_link_template = _DOCS_URL + "generated/{estimator_module}.{estimator_name}.html"

    def __init__(
        self,
        estimator,
        n_seeds=5,
        *,
        n_jobs=None,
        random_state=None,
        correlation="spearman",
        kl_threshold=0.01,
    ):
        self.estimator = estimator
        self.n_seeds = n_seeds
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.correlation = correlation
        self.kl_threshold = kl_threshold

    @_fit_context(
        # The members validate their own parameters when they are fitted.
        prefer_skip_nested_validation=False
    )
    def fit(self, X, y=None):
        """Fit ``n_seeds`` clones of the estimator and score them with UDR.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Training data, passed to every member (at least 2 samples).
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            Fitted selector.
        """
        if "random_state" not in self.estimator.get_params():
            raise ValueError(
                f"{type(self.estimator).__name__} has no random_state parameter: "
                "UDRSelector trains its members from different seeds through it."
            )
        # Checks X and sets n_features_in_ / feature_names_in_, but the members get X
        # as given and validate it themselves: a DataFrame keeps the column names that
        # their condition_features may refer to.
        validate_data(self, X, dtype=None, ensure_min_samples=2)
        rng = check_random_state(self.random_state)
        seeds = rng.randint(np.iinfo(np.int32).max, size=self.n_seeds)
        members = [clone(self.estimator).set_params(random_state=int(s)) for s in seeds]
        self.estimators_ = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_member)(member, X) for member in members
        )
        self.udr_scores_ = udr_score(
            self.estimators_, X, correlation=self.correlation, kl_threshold=self.kl_threshold
        )
        self.best_index_ = int(np.argmax(self.udr_scores_))
        self.best_estimator_ = self.estimators_[self.best_index_]
        return self

    def transform(self, X):
        """Encode X with the selected model.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components + n_conditions)
            ``best_estimator_.transform(X)``: posterior means for a VAE,
            followed by the condition columns of X if it has
            ``condition_features``.
        """
        check_is_fitted(self)
        return self.best_estimator_.transform(X)

    @available_if(_best_has("inverse_transform"))
    def inverse_transform(self, X):
        """Decode codes with the selected model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Codes, e.g. the output of :meth:`transform`.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
            ``best_estimator_.inverse_transform(X)``.
        """
        check_is_fitted(self)
        return self.best_estimator_.inverse_transform(X)

    @available_if(_best_has("sample"))
    def sample(self, n_samples=1, random_state=None, conditions=None):
        """Generate samples from the selected model.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples to generate.
        random_state : int, RandomState instance or None, default=None
            Seeds the draws.
        conditions : array-like of shape (n_samples, n_conditions) or (n_conditions,), default=None
            The conditions to decode under, in the order of the selected
            model's ``condition_indices_``; one row is used for every sample.
            Required when the estimator has ``condition_features``, refused
            when it has none.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            ``best_estimator_.sample(n_samples, random_state, conditions)``.
        """
        check_is_fitted(self)
        if conditions is None:
            # Estimators without conditions need no conditions parameter.
            return self.best_estimator_.sample(n_samples, random_state=random_state)
        return self.best_estimator_.sample(
            n_samples, random_state=random_state, conditions=conditions
        )

    @available_if(_best_has("score_samples"))
    def score_samples(self, X):
        """Per-sample score of the selected model (the ELBO for a VAE).

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Data to evaluate.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            ``best_estimator_.score_samples(X)``.
        """
        check_is_fitted(self)
        return self.best_estimator_.score_samples(X)

    def score(self, X, y=None):
        """Mean UDR of the members on X: how much the seeds agree.

        The criterion of :class:`~sklearn.model_selection.GridSearchCV`
        without ``scoring``: a setting whose seeds learn the same code on
        held-out data scores higher.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Data to encode (at least 2 samples).
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        score : float
            Mean of :func:`~sklearn_betavae.metrics.udr_score` over the
            members.
        """
        check_is_fitted(self)
        scores = udr_score(
            self.estimators_, X, correlation=self.correlation, kl_threshold=self.kl_threshold
        )
        return float(np.mean(scores))

    @available_if(_best_has("get_feature_names_out"))
    def get_feature_names_out(self, input_features=None):
        """Names of the output features: those of the selected model.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Checked against the names seen in :meth:`fit`, if any.

        Returns
        -------
        feature_names_out : ndarray of str objects
            ``best_estimator_.get_feature_names_out()``, e.g.
            ``["betavae0", "betavae1", ...]``.
        """
        check_is_fitted(self)
        _check_feature_names_in(self, input_features, generate_names=False)
        return self.best_estimator_.get_feature_names_out()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator)
        tags.input_tags.allow_nan = inner.input_tags.allow_nan
        tags.input_tags.sparse = inner.input_tags.sparse
        tags.non_deterministic = inner.non_deterministic
        if inner.transformer_tags is not None:
            tags.transformer_tags.preserves_dtype = inner.transformer_tags.preserves_dtype
        return tags
