# Conan 2 recipe: chorus as a header-only package (the headers under include/ and the
# dependencies' requirements; nothing is compiled). docs/packaging.md shows the local check:
#   conan create . --build=missing            (dependencies from a Conan remote)
#   conan create . -pr:a packaging/conan/debian-system   (dependencies from Debian's packages)
import os
import re

from conan import ConanFile
from conan.tools.build import check_min_cppstd
from conan.tools.files import copy, load
from conan.tools.layout import basic_layout

required_conan_version = ">=2.0"


class ChorusConan(ConanFile):
    name = "chorus"
    description = "On-device LLM inference (GGUF, llama/mistral family) and model fusion, header-only C++20"
    license = "Apache-2.0"
    topics = ("llm", "inference", "gguf", "llama", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    exports_sources = "include/*", "LICENSE"
    no_copy_source = True

    def set_version(self):
        # The one place the version lives: include/chorus/version.hpp.
        text = load(self, os.path.join(self.recipe_folder, "include", "chorus", "version.hpp"))
        self.version = re.search(r'#define CHORUS_VERSION_STRING "([^"]+)"', text).group(1)

    def layout(self):
        basic_layout(self, src_folder=".")

    def requirements(self):
        # Header-only dependencies, as on Debian 12 (docs/design.md): SIMD kernels, JSON, and
        # Boost.Asio for fusion (chorus/inference.hpp alone does not read Boost).
        self.requires("xsimd/[>=8.1 <9]")
        self.requires("nlohmann_json/[>=3.11 <4]")
        self.requires("boost/[>=1.81 <2]", options={"header_only": True})

    def package_id(self):
        self.info.clear()

    def validate(self):
        check_min_cppstd(self, 20)

    def package(self):
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))
        copy(self, "*.hpp", os.path.join(self.source_folder, "include"), os.path.join(self.package_folder, "include"))

    def package_info(self):
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        # The names chorus's own CMake package uses: find_package(chorus), chorus::chorus.
        self.cpp_info.set_property("cmake_file_name", "chorus")
        self.cpp_info.set_property("cmake_target_name", "chorus::chorus")
        self.cpp_info.requires = ["xsimd::xsimd", "nlohmann_json::nlohmann_json", "boost::headers"]
        if self.settings.os in ("Linux", "FreeBSD"):
            self.cpp_info.system_libs = ["pthread"]
