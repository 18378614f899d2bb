"""Names of the OFD package (GB/T 33190-2016) as certstore writes it: namespace, element and attribute names,
package paths, algorithm identifiers and media types.

One home for every spelling, so the writer, the signer and their tests agree. Layout of a certstore OFD
(the package structure of GB/T 33190-2016)::

    OFD.xml                                 DocBody → DocInfo (+ CustomDatas), DocRoot, Signatures
    Doc_0/Document.xml                      CommonData, Pages, CustomTags, Attachments
    Doc_0/PublicRes.xml                     Fonts (embedded subset under Doc_0/Res/)
    Doc_0/DocumentRes.xml                   MultiMedias (base image 底图, QR code)
    Doc_0/Res/…                             font programs and images
    Doc_0/Pages/Page_0/Content.xml          the face (照面)
    Doc_0/Attachs/Attachments.xml           attachment list
    Doc_0/Attachs/metadata.xml              certificate metadata (元数据), Visible="false"
    Doc_0/Tags/CustomTags.xml               custom tags (自定义标引) → Tag_Certificate.xml
    Doc_0/Signs/Signatures.xml              signature list (added by signing)
    Doc_0/Signs/Sign_N/{Seal.esl, Signature.xml, SignedValue.dat}
"""

from __future__ import annotations

from functools import cache
from importlib import metadata
from typing import Final

#: The OFD namespace (GB/T 33190-2016 Annex A) and the prefix every vendor uses for it.
OFD_NS: Final = "http://www.ofdspec.org/2016"
OFD_PREFIX: Final = "ofd"
NSMAP: Final = {OFD_PREFIX: OFD_NS}

#: Namespace of certstore's data-indexing tag file (GB/T 36905-style 数据标引) and metadata attachment.
TAG_NS: Final = "urn:certstore:ofd:certificate-tags:1"
METADATA_NS: Final = "urn:certstore:ofd:certificate-metadata:1"
#: CustomTag TypeID (GB/T 33190 §16 body text) for e-certificate tags, as seen in real certificate files.
TAG_TYPE_ID: Final = "cert"

#: The XML declaration every part starts with (double quotes, as all readers expect).
XML_DECLARATION: Final = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def q(name: str) -> str:
    """Clark notation ``{ns}name`` of an OFD element."""
    return f"{{{OFD_NS}}}{name}"


# --- elements (local names in the OFD namespace) ----------------------------------------------------------

# OFD.xml
OFD: Final = "OFD"
DOC_BODY: Final = "DocBody"
DOC_INFO: Final = "DocInfo"
DOC_ID: Final = "DocID"
TITLE: Final = "Title"
AUTHOR: Final = "Author"
CREATION_DATE: Final = "CreationDate"
CREATOR: Final = "Creator"
CREATOR_VERSION: Final = "CreatorVersion"
CUSTOM_DATAS: Final = "CustomDatas"
CUSTOM_DATA: Final = "CustomData"
DOC_ROOT: Final = "DocRoot"
SIGNATURES: Final = "Signatures"  # also the root of Signatures.xml

# Document.xml
DOCUMENT: Final = "Document"
COMMON_DATA: Final = "CommonData"
MAX_UNIT_ID: Final = "MaxUnitID"
PAGE_AREA: Final = "PageArea"
PHYSICAL_BOX: Final = "PhysicalBox"
PUBLIC_RES: Final = "PublicRes"
DOCUMENT_RES: Final = "DocumentRes"
PAGES: Final = "Pages"
PAGE: Final = "Page"  # also the root of a page's Content.xml
CUSTOM_TAGS: Final = "CustomTags"  # also the root of CustomTags.xml
CUSTOM_TAG: Final = "CustomTag"
ATTACHMENTS: Final = "Attachments"  # also the root of Attachments.xml
ATTACHMENT: Final = "Attachment"
FILE_LOC: Final = "FileLoc"

# resources
RES: Final = "Res"
FONTS: Final = "Fonts"
FONT: Final = "Font"
FONT_FILE: Final = "FontFile"
MULTI_MEDIAS: Final = "MultiMedias"
MULTI_MEDIA: Final = "MultiMedia"
MEDIA_FILE: Final = "MediaFile"

# page content
CONTENT: Final = "Content"
LAYER: Final = "Layer"
TEXT_OBJECT: Final = "TextObject"
IMAGE_OBJECT: Final = "ImageObject"
FILL_COLOR: Final = "FillColor"
TEXT_CODE: Final = "TextCode"

# signatures
MAX_SIGN_ID: Final = "MaxSignId"
SIGNATURE: Final = "Signature"  # entry in Signatures.xml and root of Signature.xml
SIGNED_INFO: Final = "SignedInfo"
PROVIDER: Final = "Provider"
SIGNATURE_METHOD: Final = "SignatureMethod"
SIGNATURE_DATE_TIME: Final = "SignatureDateTime"
REFERENCES: Final = "References"
REFERENCE: Final = "Reference"
CHECK_VALUE: Final = "CheckValue"
STAMP_ANNOT: Final = "StampAnnot"
SEAL: Final = "Seal"
BASE_LOC: Final = "BaseLoc"
SIGNED_VALUE: Final = "SignedValue"

# --- package paths (without the leading "/"; ST_Loc values are written from these) -----------------------

OFD_XML: Final = "OFD.xml"
DOC_DIR: Final = "Doc_0"
DOCUMENT_XML: Final = f"{DOC_DIR}/Document.xml"
PUBLIC_RES_XML: Final = f"{DOC_DIR}/PublicRes.xml"
DOCUMENT_RES_XML: Final = f"{DOC_DIR}/DocumentRes.xml"
RES_DIR_NAME: Final = "Res"  # the resource files' BaseLoc, relative to Doc_0/
RES_DIR: Final = f"{DOC_DIR}/{RES_DIR_NAME}"
PAGES_DIR_NAME: Final = "Pages"
ATTACHS_DIR_NAME: Final = "Attachs"
ATTACHS_DIR: Final = f"{DOC_DIR}/{ATTACHS_DIR_NAME}"
ATTACHMENTS_XML: Final = f"{ATTACHS_DIR}/Attachments.xml"
METADATA_FILE_NAME: Final = "metadata.xml"
METADATA_XML: Final = f"{ATTACHS_DIR}/{METADATA_FILE_NAME}"
TAGS_DIR_NAME: Final = "Tags"
TAGS_DIR: Final = f"{DOC_DIR}/{TAGS_DIR_NAME}"
CUSTOM_TAGS_XML: Final = f"{TAGS_DIR}/CustomTags.xml"
TAG_FILE_NAME: Final = "Tag_Certificate.xml"
TAG_FILE_XML: Final = f"{TAGS_DIR}/{TAG_FILE_NAME}"
SIGNS_DIR_NAME: Final = "Signs"
SIGNATURES_FILE_NAME: Final = "Signatures.xml"
SIGNATURES_XML: Final = f"{DOC_DIR}/{SIGNS_DIR_NAME}/{SIGNATURES_FILE_NAME}"
SEAL_FILE_NAME: Final = "Seal.esl"
SIGNATURE_FILE_NAME: Final = "Signature.xml"
SIGNED_VALUE_FILE_NAME: Final = "SignedValue.dat"


def page_content_path(index: int) -> str:
    """``Doc_0/Pages/Page_{index}/Content.xml``."""
    return f"{DOC_DIR}/{PAGES_DIR_NAME}/Page_{index}/Content.xml"


def sign_dir(signs_dir: str, index: int) -> str:
    """``{signs_dir}/Sign_{index}`` — the folder of one signature."""
    return f"{signs_dir}/Sign_{index}"


def loc(path: str) -> str:
    """The absolute ST_Loc of a package path (``/Doc_0/…``)."""
    return "/" + path.lstrip("/")


# --- algorithms and identities ------------------------------------------------------------------------------

#: SignatureMethod: SM2 with SM3 (GB/T 33560); References/@CheckMethod: SM3 (most vendors write the OID).
SIGNATURE_METHOD_SM2_SM3: Final = "1.2.156.10197.1.501"
CHECK_METHOD_SM3: Final = "1.2.156.10197.1.401"

#: Signatures.xml Signature/@Type values (GB/T 33190 Signatures.xsd; absent means Seal).
TYPE_SEAL: Final = "Seal"
TYPE_SIGN: Final = "Sign"

#: DocInfo/Creator and Provider/@ProviderName, @Company.
CREATOR_NAME: Final = "certstore"
PROVIDER_NAME: Final = "certstore"
PROVIDER_COMPANY: Final = "certstore"


@cache
def creator_version() -> str:
    """DocInfo/CreatorVersion and Provider/@Version: the installed certstore version."""
    try:
        return metadata.version("certstore")
    except metadata.PackageNotFoundError:
        return "0"


# --- media types ----------------------------------------------------------------------------------------------

#: Image media type → (MultiMedia/@Format, file extension, magic-number prefixes).
IMAGE_FORMATS: Final[dict[str, tuple[str, str, tuple[bytes, ...]]]] = {
    "image/png": ("PNG", "png", (b"\x89PNG\r\n\x1a\n",)),
    "image/jpeg": ("JPEG", "jpg", (b"\xff\xd8\xff",)),
    "image/gif": ("GIF", "gif", (b"GIF87a", b"GIF89a")),
    "image/bmp": ("BMP", "bmp", (b"BM",)),
}

# --- metadata --------------------------------------------------------------------------------------------------

#: Titles of the GB/T 36903-style metadata elements certstore writes (``certstore.records.prepare_version``);
#: written as ``Title`` in metadata.xml so the attachment explains itself. ``KZ_*`` are extensions.
METADATA_TITLES: Final = {
    "ZZBS": "证照标识",
    "ZZMC": "证照名称",
    "ZZLXDM": "证照类型代码",
    "ZZBH": "证照编号",
    "ZZBFJG": "证照颁发机构",
    "ZZBFJGDM": "证照颁发机构代码",
    "ZZBFRQ": "证照颁发日期",
    "ZZYXQQSRQ": "证照有效期起始日期",
    "ZZYXQJZRQ": "证照有效期截止日期",
    "CZZT": "持证主体",
    "CZZTDM": "持证主体代码",
    "CZZTDMLX": "持证主体代码类型",
    "CZZTDMLXDM": "持证主体代码类型代码",
    "ZZQZR": "证照签章人",
    "ZZQZSJ": "签章时间",
    "ZZQZMC": "签章名称",
}

#: Metadata keys used for DocInfo fields.
META_IDENTIFIER: Final = "ZZBS"
META_NAME: Final = "ZZMC"
META_ISSUER: Final = "ZZBFJG"
META_ISSUE_DATE: Final = "ZZBFRQ"

#: Face roles (``TextItem.role``) that print a metadata element; the tag file names the element too.
ROLE_METADATA: Final = {
    "title": "ZZMC",
    "number": "ZZBH",
    "issuer": "ZZBFJG",
    "identifier": "ZZBS",
    "date": "ZZBFRQ",
}
