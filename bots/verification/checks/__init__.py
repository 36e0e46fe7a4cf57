"""The checks a persona message goes through, one module each.

Every check takes the channel's :class:`~config.verification.VerificationPolicy` in its
constructor (none: the policy's defaults) and answers with a :class:`~bots.verification.base.CheckResult`.
Modules are imported by :func:`bots.verification.factory.build_verifier` only for the checks a policy enables.
"""
