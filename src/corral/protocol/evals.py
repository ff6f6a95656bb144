"""Evals API objects (/v1/evals, runs, output items), in OpenAI's shapes.

Graders are parsed one by one by the service (so a bad one is named by its index in
``param``); the models here are what each grader type must look like.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RunStatus = Literal["queued", "in_progress", "completed", "failed", "canceled"]
RUN_TERMINAL: frozenset[str] = frozenset({"completed", "failed", "canceled"})

Text = Field(max_length=20_000)
Name = Field(min_length=1, max_length=256)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputText(_Strict):
    type: Literal["input_text", "output_text", "text"] = "input_text"
    text: str = Text


class GraderMessage(_Strict):
    role: Literal["user", "assistant", "system", "developer"]
    # The bound on the string member: a union's own max_length would be applied to an
    # InputText too (pydantic refuses that with a TypeError in strict mode).
    content: Annotated[str, Text] | InputText
    type: Literal["message"] | None = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else self.content.text


class StringCheckGrader(_Strict):
    type: Literal["string_check"]
    name: str = Name
    input: str = Text
    reference: str = Text
    operation: Literal["eq", "ne", "like", "ilike"]


SimilarityMetric = Literal[
    "fuzzy_match",
    "bleu",
    "gleu",
    "meteor",
    "cosine",
    "rouge_1",
    "rouge_2",
    "rouge_3",
    "rouge_4",
    "rouge_5",
    "rouge_l",
]


class TextSimilarityGrader(_Strict):
    type: Literal["text_similarity"]
    name: str = Name
    input: str = Text
    reference: str = Text
    evaluation_metric: SimilarityMetric
    pass_threshold: float


class JudgeSampling(_Strict):
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    max_completions_tokens: int | None = Field(None, ge=1, le=4096)
    reasoning_effort: str | None = None


class LabelModelGrader(_Strict):
    type: Literal["label_model"]
    name: str = Name
    model: str = Field(max_length=512)
    input: list[GraderMessage] = Field(min_length=1, max_length=32)
    labels: list[str] = Field(min_length=1, max_length=64)
    passing_labels: list[str] = Field(min_length=1, max_length=64)


class ScoreModelGrader(_Strict):
    type: Literal["score_model"]
    name: str = Name
    model: str = Field(max_length=512)
    input: list[GraderMessage] = Field(min_length=1, max_length=32)
    range: list[float] | None = Field(None, min_length=2, max_length=2)
    pass_threshold: float | None = None
    sampling_params: JudgeSampling | None = None


class PythonGrader(_Strict):
    """``def grade(sample, item) -> float``, run in a sandbox (corral.evals.sandbox)."""

    type: Literal["python"]
    name: str = Name
    source: str = Field(min_length=1, max_length=20_000)
    pass_threshold: float | None = None
    image_tag: str | None = None  # accepted for OpenAI's shape; the sandbox has one Python


DATA_SOURCES: dict[str, type[DataSource]] = {}  # filled below the run models

Grader = (
    StringCheckGrader | TextSimilarityGrader | LabelModelGrader | ScoreModelGrader | PythonGrader
)
GRADER_TYPES: dict[str, type[Grader]] = {
    "string_check": StringCheckGrader,
    "text_similarity": TextSimilarityGrader,
    "label_model": LabelModelGrader,
    "score_model": ScoreModelGrader,
    "python": PythonGrader,
}


class CustomDataSourceConfig(_Strict):
    type: Literal["custom"]
    item_schema: dict[str, Any]
    include_sample_schema: bool = False


class EvalCreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=256)
    data_source_config: dict[str, Any]
    testing_criteria: list[dict[str, Any]] = Field(min_length=1, max_length=32)
    metadata: dict[str, str] | None = Field(None, max_length=16)


class EvalUpdateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=256)
    metadata: dict[str, str] | None = Field(None, max_length=16)


class EvalObject(BaseModel):
    object: Literal["eval"] = "eval"
    id: str
    name: str
    created_at: int
    data_source_config: dict[str, Any]
    testing_criteria: list[dict[str, Any]]
    metadata: dict[str, str] | None = None


class EvalList(BaseModel):
    object: Literal["list"] = "list"
    data: list[EvalObject]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class EvalDeleted(BaseModel):
    object: Literal["eval.deleted"] = "eval.deleted"
    deleted: bool = True
    eval_id: str


# -- runs ---------------------------------------------------------------------------------


class SourceRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item: dict[str, Any]
    sample: dict[str, Any] | None = None


class FileContentSource(_Strict):
    type: Literal["file_content"]
    content: list[SourceRow] = Field(min_length=1)


class FileIdSource(_Strict):
    type: Literal["file_id"]
    id: str = Field(max_length=64)


class TemplateMessages(_Strict):
    type: Literal["template"]
    template: list[GraderMessage] = Field(min_length=1, max_length=64)


class ItemReference(_Strict):
    type: Literal["item_reference"]
    item_reference: str = Field(max_length=256)


class SamplingParams(_Strict):
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    max_completion_tokens: int | None = Field(None, ge=1, le=32_768)
    reasoning_effort: str | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = Field(None, max_length=128)


class CompletionsDataSource(_Strict):
    type: Literal["completions"]
    model: str = Field(max_length=512)
    source: FileContentSource | FileIdSource = Field(discriminator="type")
    input_messages: TemplateMessages | ItemReference = Field(discriminator="type")
    sampling_params: SamplingParams = Field(default_factory=SamplingParams)


class JsonlDataSource(_Strict):
    type: Literal["jsonl"]
    source: FileContentSource | FileIdSource = Field(discriminator="type")


DATA_SOURCES.update(completions=CompletionsDataSource, jsonl=JsonlDataSource)
DataSource = CompletionsDataSource | JsonlDataSource


class RunCreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=256)
    # Parsed by its type in the service, so errors name `data_source.<field>`.
    data_source: dict[str, Any]
    metadata: dict[str, str] | None = Field(None, max_length=16)


class ResultCounts(BaseModel):
    total: int = 0
    passed: int = 0
    failed: int = 0
    errored: int = 0


class CriterionResult(BaseModel):
    testing_criteria: str
    passed: int = 0
    failed: int = 0


class ModelUsage(BaseModel):
    model_name: str
    invocation_count: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0  # corral's addition: what the run's calls were billed


class RunError(BaseModel):
    code: str
    message: str


class EvalRun(BaseModel):
    object: Literal["eval.run"] = "eval.run"
    id: str
    eval_id: str
    name: str
    model: str
    status: RunStatus
    created_at: int
    data_source: dict[str, Any]
    error: RunError | None = None
    metadata: dict[str, str] | None = None
    report_url: str
    result_counts: ResultCounts
    per_testing_criteria_results: list[CriterionResult]
    per_model_usage: list[ModelUsage]


class EvalRunList(BaseModel):
    object: Literal["list"] = "list"
    data: list[EvalRun]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class RunDeleted(BaseModel):
    object: Literal["eval.run.deleted"] = "eval.run.deleted"
    deleted: bool = True
    run_id: str


class GraderResult(BaseModel):
    name: str
    type: str
    score: float
    passed: bool
    sample: dict[str, Any] | None = Field(None, exclude_if=lambda v: v is None)
    # corral's addition: why a grader could not grade (the item then counts as errored)
    error: str | None = Field(None, exclude_if=lambda v: v is None)


class OutputItem(BaseModel):
    object: Literal["eval.run.output_item"] = "eval.run.output_item"
    id: str
    run_id: str
    eval_id: str
    created_at: int
    status: Literal["pass", "fail", "error"]
    datasource_item_id: int
    datasource_item: dict[str, Any]
    results: list[GraderResult]
    sample: dict[str, Any]


class OutputItemList(BaseModel):
    object: Literal["list"] = "list"
    data: list[OutputItem]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False
