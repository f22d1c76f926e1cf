package com.banana.sdk.core

/**
 * Every error a caller can cause or meet. The message says what went wrong and what to do next;
 * the subclass says which layer refused. Nothing is left half-done when one is thrown.
 */
sealed class BananaException(
    message: String,
    cause: Throwable? = null,
) : Exception(message, cause)

/** manifest.json is missing, unreadable, of a newer schema, or inconsistent. */
class ManifestException(
    message: String,
    cause: Throwable? = null,
) : BananaException(message, cause)

/** A bundle file is missing, has the wrong size or sha256, or the bundle cannot be installed. */
class BundleIntegrityException(
    message: String,
    cause: Throwable? = null,
) : BananaException(message, cause)

/** The prompt is empty or longer than the model's context. */
class PromptException(
    message: String,
) : BananaException(message)

/** A generation setting the bundle cannot honour: size, steps, seed, guidance. */
class ConfigException(
    message: String,
) : BananaException(message)

/** A peel that is malformed, made for another base model, or not accepted by this bundle. */
class PeelException(
    message: String,
    cause: Throwable? = null,
) : BananaException(message, cause)

/** The runtime could not load or run a signature on any delegate. */
class EngineException(
    message: String,
    cause: Throwable? = null,
) : BananaException(message, cause)

/** A subject that cannot be read, found or bound to the denoiser's subject slots. */
open class SubjectException(
    message: String,
    cause: Throwable? = null,
) : BananaException(message, cause)

/** More subjects than the model has slots (docs/DESIGN.md §7: at most 5). */
class TooManySubjectsException(
    message: String,
) : SubjectException(message)

/** A subject name that is not in the subject store. */
class UnknownSubjectException(
    message: String,
) : SubjectException(message)

/** An upscaled size the bundle cannot reach, a bad tile configuration, or a bundle without tile signatures. */
class UpscaleException(
    message: String,
) : BananaException(message)
