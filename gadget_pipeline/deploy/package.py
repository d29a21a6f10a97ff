"""Package the transform Lambda as a deterministic zip, named by its content hash."""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

from gadget_pipeline import config

# Fixed timestamp: the same source always gives the same bytes, so an unchanged function deploys as a no-op.
_ZIP_EPOCH = (2020, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class LambdaPackage:
    name: str
    content: bytes
    sha256: str
    files: tuple[str, ...]

    @property
    def s3_key(self) -> str:
        return f"lambda/{self.name}-{self.sha256[:16]}.zip"


def package_lambda(source_dir: Path = config.LAMBDA_SOURCE_DIR) -> LambdaPackage:
    """handler.py (and any other module beside it) at the zip root, as the Lambda runtime expects."""
    sources = sorted(
        path for path in source_dir.rglob("*.py") if "__pycache__" not in path.parts and path.is_file()
    )
    if not any(path.name == "handler.py" for path in sources):
        raise config.ConfigError(f"no handler.py in {source_dir}")
    buffer = io.BytesIO()
    names = []
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sources:
            name = path.relative_to(source_dir).as_posix()
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
            names.append(name)
    content = buffer.getvalue()
    return LambdaPackage(source_dir.name, content, hashlib.sha256(content).hexdigest(), tuple(names))


def upload_package(s3_client, bucket: str, package: LambdaPackage) -> bool:
    """Upload unless an object with that content-addressed key is already there. True if uploaded."""
    try:
        s3_client.head_object(Bucket=bucket, Key=package.s3_key)
        return False
    except s3_client.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
    s3_client.put_object(Bucket=bucket, Key=package.s3_key, Body=package.content)
    return True
