"""template.yaml gives the ApiFunction what the aws shape of the API needs: the candle
store the ingests write (QuestDB, from the same secret as the signal evaluator's) and
read-write access to the webhook configs the WebhookFunction reads."""

from __future__ import annotations

from typing import Any

import sam_template as sam

TEMPLATE: dict[str, Any] = sam.load_template()


def _variables(name: str) -> dict[str, Any]:
    """The function's Environment as written (before resolution)."""
    env: dict[str, Any] = TEMPLATE["Resources"][name]["Properties"]["Environment"]["Variables"]
    return env


def _statements(name: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for policy in TEMPLATE["Resources"][name]["Properties"]["Policies"]:
        if isinstance(policy, dict) and "Statement" in policy:
            out += policy["Statement"]
    return out


def test_api_reads_candles_from_questdb_like_the_signal_evaluator() -> None:
    api = _variables("ApiFunction")["ALGOTRENDY_QUESTDB_URL"]
    assert api == _variables("SignalEvaluatorFunction")["ALGOTRENDY_QUESTDB_URL"]
    assert api == {"Fn::Sub": "{{resolve:secretsmanager:${QuestDbSecretName}:SecretString:url}}"}
    resolved = sam.function_environment(TEMPLATE, "ApiFunction")["ALGOTRENDY_QUESTDB_URL"]
    default = sam.parameter_defaults(TEMPLATE)["QuestDbSecretName"]
    assert resolved == f"{{{{resolve:secretsmanager:{default}:SecretString:url}}}}"


def test_api_publishes_to_the_parameter_the_webhook_reads() -> None:
    api = sam.function_environment(TEMPLATE, "ApiFunction")
    webhook = sam.function_environment(TEMPLATE, "WebhookFunction")
    assert (
        api["ALGOTRENDY_WEBHOOK_CONFIG_PARAMETER"] == webhook["ALGOTRENDY_WEBHOOK_CONFIG_PARAMETER"]
    )
    name = sam.parameter_defaults(TEMPLATE)["WebhookConfigParameterName"]
    assert api["ALGOTRENDY_WEBHOOK_CONFIG_PARAMETER"] == f"/{name}"

    resolver = sam._invoke_module().Resolver(TEMPLATE, region=sam.REGION)
    arn = f"arn:aws:ssm:{sam.REGION}:{sam.ACCOUNT_ID}:parameter/{name}"
    reads = [
        p["SSMParameterReadPolicy"]["ParameterName"]
        for p in TEMPLATE["Resources"]["ApiFunction"]["Properties"]["Policies"]
        if isinstance(p, dict) and "SSMParameterReadPolicy" in p
    ]
    assert reads == [{"Ref": "WebhookConfigParameterName"}]
    (put,) = [s for s in _statements("ApiFunction") if s["Action"] == "ssm:PutParameter"]
    assert resolver.value(put["Resource"]) == arn
    (kms,) = [s for s in _statements("ApiFunction") if "kms:Encrypt" in s["Action"]]
    assert sorted(kms["Action"]) == ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
    cond = kms["Condition"]["StringEquals"]
    assert resolver.value(cond["kms:EncryptionContext:PARAMETER_ARN"]) == arn
    assert resolver.value(cond["kms:ViaService"]) == f"ssm.{sam.REGION}.amazonaws.com"
