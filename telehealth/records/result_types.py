"""The kinds of test result a record holds: a small coded set of LOINC laboratory tests and imaging and ECG
studies, each with its Chinese name, its unit (laboratory values) and whether FHIR carries it as an
Observation (a value) or a DiagnosticReport (a written report)."""

from __future__ import annotations

from dataclasses import dataclass

LOINC = "http://loinc.org"
# HL7 v2 table 0074 (diagnostic service sections), as FHIR's DiagnosticReport.category uses it.
DIAGNOSTIC_SERVICE = "http://terminology.hl7.org/CodeSystem/v2-0074"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
KINDS = ("lab", "imaging", "ecg")


@dataclass(frozen=True)
class ResultType:
    code: str
    kind: str  # lab (a value, FHIR Observation) | imaging | ecg (a report, FHIR DiagnosticReport)
    name: str
    name_zh: str
    unit: str = ""
    # The diagnostic service section of a report (v2-0074).
    section: str = "LAB"

    @property
    def is_report(self) -> bool:
        return self.kind != "lab"


RESULT_TYPES: tuple[ResultType, ...] = (
    ResultType("6690-2", "lab", "White blood cell count", "白细胞计数", "10*9/L"),
    ResultType("718-7", "lab", "Haemoglobin", "血红蛋白", "g/L"),
    ResultType("777-3", "lab", "Platelet count", "血小板计数", "10*9/L"),
    ResultType("14749-6", "lab", "Glucose (serum or plasma)", "血糖", "mmol/L"),
    ResultType("4548-4", "lab", "Haemoglobin A1c", "糖化血红蛋白", "%"),
    ResultType("14682-9", "lab", "Creatinine (serum or plasma)", "血肌酐", "umol/L"),
    ResultType("1742-6", "lab", "Alanine aminotransferase", "丙氨酸氨基转移酶", "U/L"),
    ResultType("14647-2", "lab", "Total cholesterol", "总胆固醇", "mmol/L"),
    ResultType("6598-7", "lab", "Cardiac troponin T", "心肌肌钙蛋白T", "ug/L"),
    ResultType("11524-6", "ecg", "Electrocardiogram", "心电图", section="EC"),
    ResultType("36643-5", "imaging", "Chest X-ray (2 views)", "胸部X线摄影", section="RAD"),
    ResultType("24627-2", "imaging", "Chest CT", "胸部CT", section="CT"),
    ResultType("24725-4", "imaging", "Head CT", "头颅CT", section="CT"),
)
BY_CODE: dict[str, ResultType] = {r.code: r for r in RESULT_TYPES}


def result_type(code: str) -> ResultType | None:
    return BY_CODE.get(code)
