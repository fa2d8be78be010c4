# What tests/test_family_contract.py must catch (never imported).
SHAP_E = "SHAP_E"
settings = None
print(settings.family == "SHAP_E")
print(settings.family)
print(SHAP_E != settings.family)
